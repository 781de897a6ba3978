// Package helperimage names runhost's own one-file helper images: the init
// program's (what fills the Docker executor's init volume, and what a
// Kubernetes pod's init container copies it from) and the egress proxy's
// (its container on Docker, its pod on Kubernetes). A name carries a hash
// of the binary, so a new build never runs an old image. Both executors,
// the host's wiring (internal/app) and the policy (which refuses these
// repositories to requests) use these names.
package helperimage

import (
	"crypto/sha256"
	"encoding/hex"
)

// The helper images' repositories.
const (
	InitRepository   = "runhost/init"
	EgressRepository = "runhost/egress"
)

// Init is the image holding runhost-init at /init.
func Init(binary []byte) string { return name(InitRepository, binary) }

// Egress is the image holding runhost-egress at /egress.
func Egress(binary []byte) string { return name(EgressRepository, binary) }

func name(repository string, binary []byte) string {
	sum := sha256.Sum256(binary)
	return repository + ":" + hex.EncodeToString(sum[:6])
}
