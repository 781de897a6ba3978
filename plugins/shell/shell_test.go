package main

import (
	"slices"
	"testing"

	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/plugintest"
)

func TestPlanPassesArgsToBash(t *testing.T) {
	rt := plugintest.Connect(t, Shell{})
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "5.2", Code: "echo $1", Args: []string{"hi", "there"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bash", "main.sh", "hi", "there"}; !slices.Equal(spec.Command, want) {
		t.Errorf("command = %q, want %q", spec.Command, want)
	}
	if len(spec.Files) != 1 || string(spec.Files[0].Content) != "echo $1" {
		t.Errorf("files = %+v", spec.Files)
	}
}

func TestCustomCommand(t *testing.T) {
	rt := plugintest.Connect(t, Shell{})
	tests := []struct {
		req   shared.RunRequest
		image string
		argv  []string
	}{
		{shared.RunRequest{Version: "5.2", Image: "alpine:3", Command: shared.Command{Argv: []string{"echo", "x"}}, Args: []string{"y"}}, "alpine:3", []string{"echo", "x", "y"}},
		{shared.RunRequest{Version: "5.2", Command: shared.Command{Shell: "echo $1"}, Args: []string{"y"}}, "runhost/shell:bookworm", []string{"sh", "-c", "echo $1", "sh", "y"}},
	}
	for _, tt := range tests {
		spec, err := rt.Plan(t.Context(), tt.req)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Image != tt.image || !slices.Equal(spec.Command, tt.argv) {
			t.Errorf("spec = %q %q, want %q %q", spec.Image, spec.Command, tt.image, tt.argv)
		}
	}
	if _, err := rt.Plan(t.Context(), shared.RunRequest{Version: "5.2", Image: "alpine:3"}); err == nil {
		t.Error("an image without a command must be refused")
	}
}
