package kubernetes

import "github.com/runhost/runhost/internal/initproc"

// executorExit is an exit the engine reported (no exit frame).
func executorExit(code int) initproc.Exit { return initproc.Exit{Code: code} }
