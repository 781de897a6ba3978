package kubernetes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/runhost/runhost/internal/egress"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/depcache"
)

const keyA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDirStoreListsFinishedEntriesOnly(t *testing.T) {
	dir := t.TempDir()
	s := dirStore{dir: dir}
	mk := func(name string, ready bool, age time.Duration) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "pkg.py"), []byte("x = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if ready {
			_ = os.WriteFile(filepath.Join(p, depcache.ReadyFile), nil, 0o644)
		}
		old := time.Now().Add(-age)
		_ = os.Chtimes(p, old, old)
	}
	mk(keyA, true, 0)                                   // finished
	mk(strings.Repeat("b", 64), false, 0)               // no mark: not an entry
	mk(keyA+tmpMark+"fresh", false, time.Minute)        // an install going on: kept
	mk(keyA+tmpMark+"stale", false, staleTmp+time.Hour) // a dead host's: removed
	mk("not-a-key", true, 0)

	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Key != keyA || list[0].Name != keyA || !list[0].Verified {
		t.Fatalf("List = %+v", list)
	}
	if _, err := os.Stat(filepath.Join(dir, keyA+tmpMark+"fresh")); err != nil {
		t.Error("an install in progress was removed")
	}
	if _, err := os.Stat(filepath.Join(dir, keyA+tmpMark+"stale")); !os.IsNotExist(err) {
		t.Error("a stale unfinished install was kept")
	}
	sizes, err := s.Sizes(context.Background())
	if err != nil || sizes[keyA] != 6 {
		t.Errorf("Sizes = %v, %v; want %s: 6", sizes, err, keyA)
	}
	if err := s.Remove(context.Background(), "../x"); err == nil {
		t.Error("Remove accepted a path")
	}
}

func TestValidKey(t *testing.T) {
	for k, want := range map[string]bool{
		keyA: true, "0123456789abcdef": true,
		"": false, "0123": false, "../../etc/passwd0000": false, strings.ToUpper(keyA): false, keyA + tmpMark + "x": false,
	} {
		if validKey(k) != want {
			t.Errorf("validKey(%q) = %v", k, !want)
		}
	}
}

func TestInstallAndRunPodsMountTheirEntry(t *testing.T) {
	e := &Executor{cfg: Config{InitImage: "init", Cache: CacheVolume{Claim: "deps", Root: "/cache"}}}
	limits := executor.Limits{MemoryBytes: 256 << 20, NanoCPUs: 2e9, TmpBytes: 1 << 20, RunDirBytes: 1 << 20}
	step := executor.Job{Image: "img", User: "1000:1000", Limits: limits, Labels: map[string]string{"runhost.step": executor.StageInstall}}
	pod, err := e.stepPodFor(step, claimMount{volume: "deps", claim: "deps", subPath: depsSubPath(keyA + tmpMark + "x"), target: "/deps"})
	if err != nil {
		t.Fatal(err)
	}
	run := pod.Spec.Containers[0]
	if got := run.Resources.Requests[corev1.ResourceCPU]; got.MilliValue() != 500 {
		t.Errorf("install pod requests %s CPU, want 500m", got.String())
	}
	if got := run.Resources.Limits[corev1.ResourceCPU]; got.MilliValue() != 2000 {
		t.Errorf("install pod's CPU limit %s, want 2", got.String())
	}
	if m := run.VolumeMounts[len(run.VolumeMounts)-1]; m.SubPath != "deps/"+keyA+tmpMark+"x" || m.ReadOnly || m.MountPath != "/deps" {
		t.Errorf("install mount %+v", m)
	}

	pod, err = e.podFor(executor.Job{Image: "img", User: "1000:1000", Limits: limits}, claimMount{volume: "deps", claim: "deps", subPath: depsSubPath(keyA), target: "/deps", readOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	run = pod.Spec.Containers[0]
	if got := run.Resources.Requests[corev1.ResourceCPU]; got.MilliValue() != 2000 {
		t.Errorf("run pod requests %s CPU, want its limit", got.String())
	}
	m := run.VolumeMounts[len(run.VolumeMounts)-1]
	v := pod.Spec.Volumes[len(pod.Spec.Volumes)-1]
	if m.SubPath != "deps/"+keyA || !m.ReadOnly || v.PersistentVolumeClaim == nil || !v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("run mount %+v, volume %+v", m, v)
	}
	if p := pod.Spec.SecurityContext.FSGroupChangePolicy; p == nil || *p != corev1.FSGroupChangeOnRootMismatch {
		t.Errorf("fsGroupChangePolicy %v", p)
	}
}

func TestEgressPodIsHardened(t *testing.T) {
	e := &Executor{cfg: Config{User: "1000:1000", Instance: "i1", Egress: EgressConfig{Image: "egress", Allow: []string{"pypi.org"}, CIDRs: []string{"10.0.0.0/8"}}}}
	pod := e.egressPodSpec(time.Now().Add(egressLifetime))
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 {
		t.Errorf("security context %+v", sc)
	}
	if *pod.Spec.AutomountServiceAccountToken || pod.Labels[LabelEgress] != "true" || pod.Labels[LabelInstance] != "i1" || pod.Annotations[AnnoDeadline] == "" {
		t.Errorf("pod %+v", pod.ObjectMeta)
	}
	if got := strings.Join(c.Command, " "); got != "/egress -listen :3128 -allow pypi.org -allow-cidrs 10.0.0.0/8" {
		t.Errorf("command %q", got)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != egress.HealthPath {
		t.Error("no readiness probe asking the proxy itself: installs could use a proxy that does not answer")
	}
	// Its own uid, which no run or install pod has.
	if *sc.RunAsUser != egress.UID || *sc.RunAsGroup != egress.GID || *pod.Spec.SecurityContext.RunAsUser != egress.UID {
		t.Errorf("the proxy runs as %d:%d, want %d:%d", *sc.RunAsUser, *sc.RunAsGroup, egress.UID, egress.GID)
	}
}

// The install step writes its output to a size-capped emptyDir and never
// sees the cache claim; only the copy container has the claim (writable)
// and the install's output (read-only).
func TestInstallPodCapsTheOutputAndHidesTheCache(t *testing.T) {
	e := &Executor{cfg: Config{InitImage: "init", Cache: CacheVolume{Claim: "deps", Root: "/cache"}}}
	limits := executor.Limits{MemoryBytes: 1 << 30, NanoCPUs: 2e9, TmpBytes: 1 << 20, RunDirBytes: 1 << 20}
	job := executor.Job{ID: "r1", Image: "img", User: "1000:1000", Limits: limits,
		Install: &executor.Install{Image: "img", OutputDir: "/deps", DiskBytes: 256 << 20, Limits: limits}}
	sub := depsSubPath(keyA + tmpMark + "x")
	pod, err := e.installPodFor(executor.InstallStep(job), sub, job.Install)
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.Containers) != 2 {
		t.Fatalf("%d containers, want run and copy", len(pod.Spec.Containers))
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	mounts := func(c corev1.Container) map[string]corev1.VolumeMount {
		out := map[string]corev1.VolumeMount{}
		for _, m := range c.VolumeMounts {
			out[m.Name] = m
		}
		return out
	}
	run, cp := mounts(pod.Spec.Containers[0]), mounts(pod.Spec.Containers[1])
	out := volumes["out"].EmptyDir
	if out == nil || out.Medium != corev1.StorageMediumMemory || out.SizeLimit == nil || out.SizeLimit.Value() != 256<<20 {
		t.Errorf("output volume %+v, want a 256 MiB memory emptyDir", volumes["out"])
	}
	if m, ok := run["out"]; !ok || m.MountPath != "/deps" || m.ReadOnly {
		t.Errorf("the install's output mount %+v", m)
	}
	if _, ok := run["deps"]; ok {
		t.Error("the install step sees the cache claim")
	}
	if m := cp["out"]; m.MountPath != executor.InstallSource || !m.ReadOnly {
		t.Errorf("the copy's source %+v, want read-only at %s", m, executor.InstallSource)
	}
	if m := cp["deps"]; m.MountPath != "/deps" || m.SubPath != sub || m.ReadOnly {
		t.Errorf("the copy's destination %+v", m)
	}
	if sc := pod.Spec.Containers[1].SecurityContext; sc == nil || *sc.RunAsUser != 1000 || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
		t.Errorf("copy container security context %+v", sc)
	}
}
