// Package seccomp holds the seccomp profiles runhost ships, for the
// executors that hand them to the engine themselves: the Docker executor
// gives runhost-builder.json to its builder containers, the same profile
// Kubernetes nodes install for build pods (one file, not two copies).
package seccomp

import _ "embed"

// Builder is runhost-builder.json: the runtime's default profile plus the
// namespace and mount system calls rootless BuildKit needs.
//
//go:embed runhost-builder.json
var Builder []byte
