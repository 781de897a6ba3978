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
