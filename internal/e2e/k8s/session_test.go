//go:build k8s

package k8s

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runhost/runhost/internal/e2e/scenario"
	k8sexec "github.com/runhost/runhost/internal/executor/kubernetes"
	"github.com/runhost/runhost/internal/testenv"
)

// Sessions on Kubernetes: one hardened pod per session, attached for the
// session's life, the same API and behaviour as on Docker.
func TestSessionsOnKubernetes(t *testing.T) {
	h := startHost(t, "RUNHOST_SESSION_MAX_LIFETIME_S=900")
	status, body := h.post("/sessions", map[string]any{"runtime": "python", "version": "3.11"})
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("create session: %d %s", status, body)
	}
	var s struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &s); err != nil || s.ID == "" {
		t.Fatalf("%v: %s", err, body)
	}
	run := func(req map[string]any) result {
		t.Helper()
		status, body := h.post("/sessions/"+s.ID+"/run", req)
		if status != 200 {
			t.Fatalf("session run: %d %s", status, body)
		}
		var r result
		_ = json.Unmarshal(body, &r)
		return r
	}

	pods := h.pods()
	if len(pods) != 1 {
		t.Fatalf("%d pods for one session, want 1", len(pods))
	}
	pod := pods[0]
	t.Run("the pod is hardened like a run's and lives as long as the session", func(t *testing.T) {
		c := pod.Spec.Containers[0]
		if sc := c.SecurityContext; sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 {
			t.Errorf("security context %+v", c.SecurityContext)
		}
		if *pod.Spec.AutomountServiceAccountToken {
			t.Error("the session pod mounts a service account token")
		}
		deadline, _ := strconv.ParseInt(pod.Annotations[k8sexec.AnnoDeadline], 10, 64)
		if min := time.Now().Add(900 * time.Second).Unix(); deadline < min {
			t.Errorf("a sweep may delete the session's pod at %d, before its lifetime ends (%d)", deadline, min)
		}
		if d := pod.Spec.ActiveDeadlineSeconds; d == nil || *d < 900 {
			t.Errorf("activeDeadlineSeconds %v shorter than the session's lifetime", d)
		}
	})

	scenario.PythonSession(t, h.post, s.ID)
	t.Run("a client hanging up cancels the run, not the session", func(t *testing.T) {
		scenario.SessionSurvivesHangUp(t, h.post, h.url, "", s.ID)
	})
	t.Run("a sweep leaves a live session alone", func(t *testing.T) {
		if _, err := h.app.Executor.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r := run(map[string]any{"code": "print('alive')"}); r.Stdout != "alive\n" {
			t.Fatalf("%+v", r)
		}
	})

	var d []time.Duration
	for range latencyRuns {
		start := time.Now()
		if r := run(map[string]any{"code": "print(1)"}); r.Stdout != "1\n" {
			t.Fatalf("%+v", r)
		}
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	t.Logf("LATENCY python print(1) in a session on kubernetes, median of %d sequential runs: %s", latencyRuns, d[len(d)/2].Round(time.Millisecond))

	if status, _ := h.do(http.MethodDelete, "/sessions/"+s.ID, ""); status != http.StatusNoContent {
		t.Errorf("DELETE: %d", status)
	}
	testenv.Eventually(t, 60*time.Second, "the session's pod to be deleted", func() bool {
		return len(h.pods()) == 0
	})
}

// A session pod that dies (deleted from outside) ends the session: the next
// run is a clear error, not a hang.
func TestKubernetesSessionWhosePodDies(t *testing.T) {
	h := startHost(t)
	status, body := h.post("/sessions", map[string]any{"runtime": "shell"})
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("create session: %d %s", status, body)
	}
	var s struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &s)
	pods := h.pods()
	if len(pods) != 1 {
		t.Fatalf("%d pods", len(pods))
	}
	zero := int64(0)
	if err := h.cs.CoreV1().Pods(h.ns).Delete(context.Background(), pods[0].Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "the session to end with its pod", func() bool {
		status, _ := h.post("/sessions/"+s.ID+"/run", map[string]any{"code": "echo hi"})
		return status == http.StatusGone || status == http.StatusNotFound
	})
}

func (h *host) do(method, path, body string) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		// What the host accepts (its browser guard): JSON, or raw bytes
		// for an upload to the files API.
		ct := "application/json"
		if method == http.MethodPut && strings.Contains(path, "/files/") {
			ct = "application/octet-stream"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
