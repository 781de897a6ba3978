// Command runhost-runc is the OCI runtime of the builder image's BuildKit
// ([worker.oci] binary in buildkitd.toml beside it): runc, after it
// gives the RUN steps of a build granted network the host's CA bundle.
//
// The host puts the bundle into the builder container only for a granted
// build, and names it in RUNHOST_BUILD_CA (and the variables that should
// point at it in RUNHOST_BUILD_CA_ENV); buildkitd hands its environment on
// to its runtime. Then every container runc creates (`run`, `create`) gets
// the file read-only at CAPath, on the container's /dev tmpfs, so that
// neither the file nor a mount point for it is in the step's snapshot, and
// each of those variables its environment does not already set, pointing
// at it. The Dockerfile, BuildKit's LLB, its cache keys, the image's layers,
// config and history never see either. Without RUNHOST_BUILD_CA it is runc.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// The environment buildkitd passes on.
const (
	envCA    = "RUNHOST_BUILD_CA"     // the bundle in the builder container
	envCAEnv = "RUNHOST_BUILD_CA_ENV" // variables (space or comma separated) to point at CAPath
	envRunc  = "RUNHOST_RUNC"         // the runc to run (default: runc on PATH)
)

func main() {
	runc := os.Getenv(envRunc)
	if runc == "" {
		p, err := exec.LookPath("runc")
		if err != nil {
			fail(err)
		}
		runc = p
	}
	if ca := os.Getenv(envCA); ca != "" {
		if bundle, ok := bundleOf(os.Args[1:]); ok {
			if err := addCA(filepath.Join(bundle, "config.json"), ca, strings.FieldsFunc(os.Getenv(envCAEnv), func(r rune) bool { return r == ' ' || r == ',' })); err != nil {
				fail(err)
			}
		}
	}
	// Exec, not a child: the caller waits for and signals this pid.
	fail(syscall.Exec(runc, append([]string{"runc"}, os.Args[1:]...), os.Environ()))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "runhost-runc: %v\n", err)
	os.Exit(1)
}

// addCA rewrites the bundle's config.json with the CA file and variables.
func addCA(config, ca string, names []string) error {
	fi, err := os.Stat(config)
	if err != nil {
		return err
	}
	spec, err := os.ReadFile(config)
	if err != nil {
		return err
	}
	out, err := withCA(spec, ca, names)
	if err != nil {
		return fmt.Errorf("%s: %w", config, err)
	}
	tmp := config + ".runhost-runc"
	if err := os.WriteFile(tmp, out, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, config)
}
