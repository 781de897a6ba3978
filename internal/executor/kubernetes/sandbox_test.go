package kubernetes

import (
	"errors"
	"testing"

	"github.com/runhost/runhost/internal/executor"
)

// A pod's RuntimeClass is the policy's choice of OCI runtime, mapped by
// RUNHOST_K8S_RUNTIME_CLASSES; an OCI runtime with no class is refused,
// never dropped (it used to be: every pod got RUNHOST_K8S_RUNTIME_CLASS).
func TestPodRuntimeClassFollowsThePolicysOCIRuntime(t *testing.T) {
	limits := executor.Limits{MemoryBytes: 64 << 20, NanoCPUs: 1e9, TmpBytes: 1 << 20, RunDirBytes: 1 << 20}
	tests := []struct {
		name     string
		def      string            // RUNHOST_K8S_RUNTIME_CLASS
		classes  map[string]string // RUNHOST_K8S_RUNTIME_CLASSES
		oci      string            // what the policy chose (RUNHOST_OCI_RUNTIME[S])
		want     string            // the pod's runtimeClassName; "" for none
		unmapped bool              // the job is refused
	}{
		{name: "no OCI runtime, no class", want: ""},
		{name: "no OCI runtime: the default class", def: "kata", want: "kata"},
		{name: "mapped", classes: map[string]string{"runsc": "gvisor"}, oci: "runsc", want: "gvisor"},
		{name: "mapped, over the default", def: "kata", classes: map[string]string{"runsc": "gvisor"}, oci: "runsc", want: "gvisor"},
		{name: "unmapped", classes: map[string]string{"runsc": "gvisor"}, oci: "kata-runtime", unmapped: true},
		{name: "unmapped, with a default class", def: "gvisor", oci: "runsc", unmapped: true},
		{name: "mapped to nothing", classes: map[string]string{"runsc": ""}, oci: "runsc", unmapped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Executor{cfg: Config{InitImage: "init", RuntimeClass: tt.def, RuntimeClasses: tt.classes}}
			pod, err := e.podFor(executor.Job{ID: "r1", Image: "img", User: "1000:1000", OCIRuntime: tt.oci, Limits: limits})
			if tt.unmapped {
				if !errors.Is(err, executor.ErrUnsupported) {
					t.Fatalf("got %v, want the job refused as unsupported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if pod.Spec.RuntimeClassName != nil {
				got = *pod.Spec.RuntimeClassName
			}
			if got != tt.want {
				t.Errorf("runtimeClassName %q, want %q", got, tt.want)
			}
		})
	}
}

// Root is refused like on Docker (executor.ParseUser), not rewritten to
// 1000 as it used to be; so is a user that is not numeric uid:gid.
func TestPodRefusesRoot(t *testing.T) {
	limits := executor.Limits{MemoryBytes: 64 << 20, NanoCPUs: 1e9, TmpBytes: 1 << 20, RunDirBytes: 1 << 20}
	e := &Executor{cfg: Config{InitImage: "init", Cache: CacheVolume{Claim: "deps", Root: "/cache"}}}
	for _, user := range []string{"0:0", "0:1000", "1000:0", "00:1000", "", "root", "1000", "-1:1000"} {
		job := executor.Job{ID: "r1", Image: "img", User: user, Limits: limits}
		if _, err := e.podFor(job); err == nil {
			t.Errorf("podFor(user %q) made a pod", user)
		}
		if _, err := e.installPodFor(job, "k", &executor.Install{OutputDir: "/deps", DiskBytes: 1 << 20}); err == nil {
			t.Errorf("installPodFor(user %q) made a pod", user)
		}
		if err := makeWritable(t.TempDir(), user); err == nil {
			t.Errorf("makeWritable(user %q) accepted it", user)
		}
	}
	pod, err := e.podFor(executor.Job{ID: "r1", Image: "img", User: "1001:1002", Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if sc := pod.Spec.SecurityContext; *sc.RunAsUser != 1001 || *sc.RunAsGroup != 1002 || !*sc.RunAsNonRoot {
		t.Errorf("pod security context %+v", sc)
	}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		if *c.SecurityContext.RunAsUser != 1001 || *c.SecurityContext.RunAsGroup != 1002 {
			t.Errorf("container %s runs as %d:%d", c.Name, *c.SecurityContext.RunAsUser, *c.SecurityContext.RunAsGroup)
		}
	}
}
