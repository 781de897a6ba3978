package main

import (
	_ "embed"

	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/kernel"
)

// KernelSource is the driver of a Node.js interpreter session: it speaks
// kernel.Protocol on fd 3 and fd 4 and uses only Node's own modules (the
// inspector's REPL mode evaluates the cells). The host places it in the
// container and starts it with KernelCommand.
//
//go:embed kernel.js
var KernelSource []byte

// KernelFile is the driver's file name.
const KernelFile = "kernel.js"

// KernelProtocol is the protocol the driver speaks.
const KernelProtocol = kernel.Protocol

// KernelCommand is the command line that starts the driver kept at path.
func KernelCommand(path string) []string {
	return []string{"node", path}
}

// interpreter is the plan of an interpreter session: the driver, started
// with the environment of a run.
func interpreter(req shared.RunRequest) shared.Spec {
	return shared.InterpreterSpec(req, nil, KernelFile, KernelSource, KernelCommand)
}
