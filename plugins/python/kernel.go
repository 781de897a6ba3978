package main

import (
	_ "embed"

	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/kernel"
)

// KernelSource is the driver of a Python interpreter session: it speaks
// kernel.Protocol on fd 3 and fd 4 and needs nothing but the standard
// library (IPython, matplotlib and pandas are used when the image has them).
// The host places it in the container and starts it with KernelCommand.
//
//go:embed kernel.py
var KernelSource []byte

// KernelFile is the driver's file name.
const KernelFile = "kernel.py"

// KernelProtocol is the protocol the driver speaks.
const KernelProtocol = kernel.Protocol

// KernelCommand is the command line that starts the driver kept at path:
// unbuffered output and UTF-8 mode, like a run's python3.
func KernelCommand(path string) []string {
	return []string{"python3", "-u", "-X", "utf8", path}
}

// interpreter is the plan of an interpreter session: the driver, started
// with the environment of a run.
func interpreter(req shared.RunRequest) shared.Spec {
	return shared.InterpreterSpec(req, map[string]string{"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}, KernelFile, KernelSource, KernelCommand)
}
