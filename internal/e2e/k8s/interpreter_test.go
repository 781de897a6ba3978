//go:build k8s

package k8s

import (
	"net/http"
	"testing"

	"github.com/runhost/runhost/internal/e2e/scenario"
)

// Interpreter sessions on Kubernetes: the same scenarios as on Docker. The
// interpreter lives in the session's pod; an interrupt reaches it through
// the pod's attach stream and a restart starts a new interpreter in the
// same pod.
func TestInterpreterOnKubernetes(t *testing.T) {
	h := startHost(t, "RUNHOST_INTERPRETER_GRACE_MS=5000")
	for _, c := range []struct {
		runtime, version string
		scenario         func(*testing.T, scenario.Post, string)
	}{
		{"python", "3.11", scenario.InterpreterPython},
		{"node", "20", scenario.InterpreterNode},
	} {
		t.Run(c.runtime, func(t *testing.T) {
			id := scenario.StartInterpreter(t, h.post, c.runtime, c.version)
			t.Cleanup(func() { h.do(http.MethodDelete, "/sessions/"+id, "") })
			c.scenario(t, h.post, id)
		})
	}
}
