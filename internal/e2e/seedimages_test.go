package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/policy"
)

// TestSeedImageNames: the seed's images are allowed by default; where the
// engine lacks them a request naming one gets a 404 that lists the images
// this host can run, and RUNHOST_IMAGE_ALIASES maps the names to local
// images, also for a Dockerfile's FROM, shown in GET /runtimes.
func TestSeedImageNames(t *testing.T) {
	cli := dockerClient(t)
	requireBuilder(t)
	h := startHostWith(t, cli)
	for _, img := range policy.SeedImages {
		status, body := h.post("/runtimes/shell/run", map[string]any{"image": img, "command": "true"})
		if _, err := cli.ImageInspect(context.Background(), img); err == nil {
			if status != 200 {
				t.Errorf("%s, on the engine: %d %s", img, status, body)
			}
			continue
		}
		e := decodeError(t, body)
		if status != 404 || e.Error.Code != "image_not_found" || !strings.Contains(e.Error.Message, "runhost/python:3.11") || !strings.Contains(e.Error.Message, "RUNHOST_IMAGE_ALIASES") {
			t.Errorf("%s, not on the engine: %d %s", img, status, body)
		}
	}

	h = startHostWith(t, cli, "RUNHOST_IMAGE_ALIASES=python:3.11-slim=runhost/python:3.11,node:20-alpine=runhost/node:20")
	res := h.run("shell", map[string]any{"image": "node:20-alpine", "command": "node --version"})
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "v20.") {
		t.Errorf("node:20-alpine as runhost/node:20: %+v", res)
	}
	res = h.run("dockerfile", map[string]any{"dockerfile": "FROM python:3.11-slim\nCMD [\"python3\", \"-c\", \"import sys; print(sys.version_info[:2])\"]\n"})
	if res.Stage != "run" || res.Stdout != "(3, 11)\n" {
		t.Errorf("FROM python:3.11-slim as runhost/python:3.11: %+v", res)
	}
	status, body := h.get("/runtimes")
	var list []struct {
		Name         string            `json:"name"`
		ImageAliases map[string]string `json:"image_aliases"`
	}
	if status != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /runtimes: %d %s", status, body)
	}
	for _, rt := range list {
		want := rt.Name == "shell" || rt.Name == "dockerfile"
		if got := rt.ImageAliases["python:3.11-slim"] == "runhost/python:3.11"; got != want {
			t.Errorf("%s lists the aliases: %v, want %v (%v)", rt.Name, got, want, rt.ImageAliases)
		}
	}
}
