package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
)

// CAPath is where a granted build's RUN steps find the host's CA bundle:
// on /dev, a tmpfs of the container's own (as BuildKit's tracing socket,
// /dev/otel-grpc.sock), never in the root filesystem a step's layer is
// taken from.
const CAPath = "/dev/runhost-ca.pem"

// bundleOf finds the bundle directory of a runc command line that creates
// a container (`run` or `create`); other commands (state, kill, delete,
// exec, ...) are passed on untouched.
func bundleOf(args []string) (string, bool) {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			break
		}
		// runc's global options that take a value as the next word.
		switch a {
		case "--root", "--log", "--log-format", "--criu":
			i++
		}
	}
	if i >= len(args) || (args[i] != "run" && args[i] != "create") {
		return "", false
	}
	for j := i + 1; j < len(args); j++ {
		a := args[j]
		switch {
		case (a == "--bundle" || a == "-b") && j+1 < len(args):
			return args[j+1], true
		case strings.HasPrefix(a, "--bundle="):
			return strings.TrimPrefix(a, "--bundle="), true
		case strings.HasPrefix(a, "-b="):
			return strings.TrimPrefix(a, "-b="), true
		}
	}
	return ".", true // runc's default: the working directory
}

// errNoDevTmpfs: the container has no /dev of its own to put the file in.
var errNoDevTmpfs = errors.New("the container has no /dev tmpfs to place the CA bundle in")

// withCA returns the OCI runtime spec with the CA file bind-mounted
// read-only at CAPath and each of names set to CAPath in the process's
// environment, unless the environment sets it already (the image's or the
// Dockerfile's own ENV wins). Every other field is kept as it was.
func withCA(spec []byte, ca string, names []string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("read the runtime spec: %w", err)
	}
	var mounts []json.RawMessage
	if raw, ok := doc["mounts"]; ok {
		if err := json.Unmarshal(raw, &mounts); err != nil {
			return nil, fmt.Errorf("read the spec's mounts: %w", err)
		}
	}
	dev := false
	for _, raw := range mounts {
		var m struct{ Destination, Type string }
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("read the spec's mounts: %w", err)
		}
		switch path.Clean(m.Destination) {
		case "/dev":
			dev = m.Type == "tmpfs"
		case CAPath:
			return nil, fmt.Errorf("the container already mounts something at %s", CAPath)
		}
	}
	if !dev {
		return nil, errNoDevTmpfs
	}
	// After the /dev tmpfs, which it lands on: mounts are made in order.
	mount, err := json.Marshal(map[string]any{
		"destination": CAPath,
		"type":        "bind",
		"source":      ca,
		"options":     []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
	})
	if err != nil {
		return nil, err
	}
	mounts = append(mounts, mount)

	var process map[string]json.RawMessage
	if err := json.Unmarshal(doc["process"], &process); err != nil {
		return nil, fmt.Errorf("read the spec's process: %w", err)
	}
	if process == nil {
		return nil, errors.New("the spec has no process")
	}
	var env []string
	if raw, ok := process["env"]; ok {
		if err := json.Unmarshal(raw, &env); err != nil {
			return nil, fmt.Errorf("read the process's env: %w", err)
		}
	}
	set := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	for _, k := range names {
		if !set[k] {
			env = append(env, k+"="+CAPath)
			set[k] = true
		}
	}
	if process["env"], err = json.Marshal(env); err != nil {
		return nil, err
	}
	if doc["process"], err = json.Marshal(process); err != nil {
		return nil, err
	}
	if doc["mounts"], err = json.Marshal(mounts); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}
