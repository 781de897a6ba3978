// Command testplugin is a runtime plugin whose behaviour is chosen by the
// name it is installed under (runhost-plugin-<behaviour>), so one binary
// plays every good and bad plugin the discovery tests need.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/runhost/runhost/internal/pluginwire"
	"github.com/runhost/runhost/shared"
)

type runtime struct{ name string }

// variant is set at build time (-ldflags -X main.variant=...) to make
// binaries that differ.
var variant = "1"

func (r runtime) Describe(context.Context) (shared.Description, error) {
	d := shared.Description{
		Name:     r.name,
		Versions: []shared.Version{{Version: "1", Image: "img:1", Default: true}},
	}
	switch r.name {
	case "zclash":
		d.Name = "good"
	case "nodesc":
		d.Versions = nil
	case "probe", "hostile":
		d.Versions[0].Image = "runhost/python:3.11"
		d.Capabilities = []shared.Capability{shared.CapPackages}
	}
	return d, nil
}

func (r runtime) Plan(ctx context.Context, req shared.RunRequest) (shared.Spec, error) {
	shared.Log(ctx).Info("planning", "behaviour", r.name)
	switch r.name {
	case "probe":
		// A test-only network grant: the request's code runs as the install
		// step, which is the only step that may reach the network.
		return shared.Spec{
			Image:   "runhost/python:3.11",
			Command: []string{"true"},
			Install: &shared.Install{Command: []string{"python3", "-c", req.Code}, OutputDir: "/deps", Network: true},
		}, nil
	case "hostile":
		return hostileSpec(req.Code), nil
	}
	switch req.Code {
	case "panic":
		panic("planned panic")
	case "exit":
		os.Exit(1)
	case "hang":
		time.Sleep(time.Hour)
	case "invalid":
		return shared.Spec{}, shared.Invalidf("this request is invalid")
	case "slow":
		time.Sleep(time.Second)
	case "wait-for-cancel":
		<-ctx.Done()
		return shared.Spec{}, ctx.Err()
	}
	image := req.VersionImage // protocol 2: the host sends the version's image
	if r.name == "v1" {
		image = "img:1" // a protocol 1 plugin knows it itself
	}
	return shared.Spec{Image: image, Command: []string{"run", req.Code}, Env: map[string]string{"PID": fmt.Sprint(os.Getpid()), "VARIANT": variant}}, nil
}

func main() {
	behaviour := strings.TrimPrefix(filepath.Base(os.Args[0]), "runhost-plugin-")
	switch behaviour {
	case "exits":
		fmt.Fprintln(os.Stderr, "testplugin: exiting at start on purpose")
		os.Exit(3)
	case "badproto":
		serveProtocol(99, runtime{behaviour})
		return
	case "v1":
		// A plugin built against an SDK that spoke only protocol 1.
		serveProtocol(pluginwire.ProtocolV1, runtime{behaviour})
		return
	case "stdout":
		fmt.Println("a stray line on stdout")
	case "sleepy":
		time.Sleep(time.Minute) // never completes the handshake in time
	case "env":
		// Reports its environment through its description, to prove it is empty
		// of the host's variables.
		shared.Serve(envRuntime{})
		return
	}
	shared.Serve(runtime{behaviour})
}

// serveProtocol serves rt speaking only protocol version v.
func serveProtocol(v int, rt shared.Runtime) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  pluginwire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{v: {pluginwire.PluginName: &pluginwire.Plugin{Impl: rt}}},
		GRPCServer:       pluginwire.NewServer,
	})
}

type envRuntime struct{}

func (envRuntime) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "env",
		Description: strings.Join(os.Environ(), "\n"),
		Versions:    []shared.Version{{Version: "1", Image: "img:1", Default: true}},
	}, nil
}

func (envRuntime) Plan(context.Context, shared.RunRequest) (shared.Spec, error) {
	return shared.Spec{}, nil
}

// hostileSpec asks for something the host's policy must refuse.
func hostileSpec(what string) shared.Spec {
	s := shared.Spec{Image: "runhost/python:3.11", Command: []string{"true"}}
	switch what {
	case "other-image":
		s.Image = "alpine:3"
	case "huge-memory":
		s.Limits.MemoryBytes = 1 << 40
	case "huge-timeout":
		s.Limits.Timeout = 1000 * time.Hour
	case "escape-file":
		s.Files = []shared.File{{Path: "../../etc/cron.d/x", Content: []byte("x")}}
	case "absolute-workdir":
		s.WorkDir = "/etc"
	case "install-into-etc":
		s.Install = &shared.Install{Command: []string{"true"}, OutputDir: "/etc"}
	case "env-injection":
		s.Env = map[string]string{"A=B": "c"}
	}
	return s
}
