//go:build k8s

package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/e2e/scenario"
)

// claimOver makes a PersistentVolume over dir (hostPath: the test cluster
// is this machine, so the host and the pods see the same directory, as
// they would through a ReadWriteMany volume) and a claim bound to it in the
// run namespace. The run pods mount only the claim: the restricted pod
// security level of the namespace forbids hostPath in pods.
func claimOver(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	cs, ns := clientset(t), runsNamespace
	name := fmt.Sprintf("runhost-ws-%d", time.Now().UnixNano())
	hostPathType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              "runhost-test-workspace",
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostPathType}},
			ClaimRef:                      &corev1.ObjectReference{Namespace: ns, Name: name},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	class := "runhost-test-workspace"
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			StorageClassName: &class,
			VolumeName:       name,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().PersistentVolumeClaims(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = cs.CoreV1().PersistentVolumes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// The controller manager binds the claim to its volume; a pod of a
	// claim not yet bound is unschedulable, so wait for it (a busy
	// cluster takes seconds).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && c.Status.Phase == corev1.ClaimBound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim %s not bound after 2 minutes (%v)", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return name
}

// Workspaces on Kubernetes: the host writes through the files API, a run
// pod and a session pod see the session directory at /workspaces/<session>,
// and what they write is what the host reads back.
func TestWorkspacesOnKubernetes(t *testing.T) {
	root := t.TempDir()
	claim := claimOver(t, root)
	h := startHost(t, "RUNHOST_WORKSPACE_ROOT="+root, "DIND_WORKSPACE_PATH=/workspaces", "RUNHOST_K8S_WORKSPACE_CLAIM="+claim)

	if status, body := h.do(http.MethodPut, "/workspaces/sess1/files/proj/in.txt", "uploaded"); status != 200 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	r := h.run("python", map[string]any{"workspace": "sess1/proj", "code": "import os\nprint(os.getcwd(), open('in.txt').read())\nopen('out.txt', 'w').write('from the pod')"})
	if r.ExitCode != 0 || r.Stdout != "/workspaces/sess1/proj uploaded\n" {
		t.Fatalf("run in the workspace: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(root, "sess1", "proj", "out.txt")); err != nil || string(b) != "from the pod" {
		t.Fatalf("the host sees %q, %v", b, err)
	}
	if status, body := h.do(http.MethodGet, "/workspaces/sess1/files/proj/out.txt", ""); status != 200 || string(body) != "from the pod" {
		t.Fatalf("GET: %d %s", status, body)
	}

	t.Run("only the session is mounted", func(t *testing.T) {
		if status, body := h.do(http.MethodPut, "/workspaces/other/files/secret.txt", "other session"); status != 200 {
			t.Fatalf("PUT: %d %s", status, body)
		}
		r := h.run("shell", map[string]any{"workspace": "sess1", "code": "ls /workspaces; cat /workspaces/other/secret.txt 2>&1 || echo unreachable"})
		if r.Stdout != "sess1\ncat: /workspaces/other/secret.txt: No such file or directory\nunreachable\n" {
			t.Fatalf("%q", r.Stdout)
		}
	})

	t.Run("a session in the workspace", func(t *testing.T) {
		status, body := h.post("/sessions", map[string]any{"runtime": "shell", "workspace": "sess1/proj"})
		if status != http.StatusCreated {
			t.Fatalf("create session: %d %s", status, body)
		}
		var s struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &s)
		status, body = h.post("/sessions/"+s.ID+"/run", map[string]any{"code": "cat out.txt; echo kept > session.txt"})
		if status != 200 || !strings.Contains(string(body), "from the pod") {
			t.Fatalf("session run: %d %s", status, body)
		}
		if b, err := os.ReadFile(filepath.Join(root, "sess1", "proj", "session.txt")); err != nil || string(b) != "kept\n" {
			t.Fatalf("the host sees %q, %v", b, err)
		}
		h.do(http.MethodDelete, "/sessions/"+s.ID, "")
	})
}

// TestTenancyOnKubernetes: the tenancy scenario the Docker suite runs
// (scenario.Tenancy), on run and session pods mounting the workspace claim.
func TestTenancyOnKubernetes(t *testing.T) {
	root := t.TempDir()
	claim := claimOver(t, root)
	keys := map[string]string{}
	var lines strings.Builder
	for _, l := range scenario.TenancyKeys {
		name, opts, _ := strings.Cut(l, " ")
		keys[name] = auth.NewKey()
		fmt.Fprintf(&lines, "%s %s %s\n", name, auth.Hash(keys[name]), opts)
	}
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// A pod requests the CPU it may use; the test node has two, and the
	// scenario holds a session while it runs: half a CPU each fits.
	h := startHost(t, "RUNHOST_WORKSPACE_ROOT="+root, "DIND_WORKSPACE_PATH=/workspaces", "RUNHOST_K8S_WORKSPACE_CLAIM="+claim, "RUNHOST_API_KEYS_FILE="+file, "RUNHOST_DEFAULT_CPUS=0.5")
	scenario.Tenancy(t, func(name string) scenario.Caller { return scenario.HTTPCaller(t, h.url, keys[name]) }, root, false)
}
