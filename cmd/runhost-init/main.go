// Command runhost-init is PID 1 of every run container. See package initproc.
// Build it static (CGO_ENABLED=0): it runs inside images it knows nothing about.
//
// `runhost-init --install DEST` copies the binary to DEST and exits: how a
// Kubernetes pod's init container puts it into a shared emptyDir.
//
// `runhost-init --copy-tree SRC DST MAXBYTES` copies the tree under SRC into
// the directory DST (initproc.CopyTree) and exits: how an install's output,
// written to a size-capped tmpfs, is copied into the dependency cache once
// the install succeeded (the command of a step init runs).
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"github.com/runhost/runhost/internal/initproc"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "--install" {
		if err := install(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "runhost-init: install: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 5 && os.Args[1] == "--copy-tree" {
		max, err := strconv.ParseInt(os.Args[4], 10, 64)
		if err == nil {
			err = initproc.CopyTree(os.Args[2], os.Args[3], max)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "runhost-init: copy the install's output: %v\n", err)
			os.Exit(1)
		}
		return
	}
	runtime.GOMAXPROCS(1)
	initproc.Main()
}

func install(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
