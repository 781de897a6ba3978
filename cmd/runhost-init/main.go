// Command runhost-init is PID 1 of every run container. See package initproc.
// Build it static (CGO_ENABLED=0): it runs inside images it knows nothing about.
package main

import (
	"runtime"

	"github.com/runhost/runhost/internal/initproc"
)

func main() {
	runtime.GOMAXPROCS(1)
	initproc.Main()
}
