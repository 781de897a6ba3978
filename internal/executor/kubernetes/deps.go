package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/depcache"
	"github.com/runhost/runhost/internal/executor/frames"
	"github.com/runhost/runhost/internal/initproc"
)

// CacheVolume is where installed dependencies are kept: a
// PersistentVolumeClaim in the run namespace (ReadWriteMany where runs land
// on several nodes) that the host sees at Root. Each install key is the
// directory deps/<key>: an install pod writes a fresh deps/<key>.tmp-<id>,
// the host renames it into place once its ready mark is there, and run
// pods mount deps/<key> read-only. The host measures, evicts and cleans up
// through Root.
type CacheVolume struct {
	Claim      string // empty: no installs on Kubernetes
	Root       string
	MaxEntries int
	MaxBytes   int64
}

func (c CacheVolume) depsDir() string { return filepath.Join(c.Root, "deps") }

// depsSubPath is an entry's sub-path in the claim.
func depsSubPath(name string) string { return "deps/" + name }

// tmpMark separates a key from the install attempt in an unfinished entry.
const tmpMark = ".tmp-"

// staleTmp is how old an unfinished entry must be before it is removed as
// a crashed install's leftover.
const staleTmp = 3 * time.Hour

// dirStore is the cache's entries as directories of the cache volume.
type dirStore struct{ dir string }

// List returns the finished entries and removes stale unfinished ones.
func (s dirStore) List(context.Context) ([]depcache.Stored, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("dependency cache: %w", err)
	}
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("dependency cache: %w", err)
	}
	var out []depcache.Stored
	for _, de := range des {
		info, err := de.Info()
		if err != nil || !de.IsDir() {
			continue
		}
		name := de.Name()
		if strings.Contains(name, tmpMark) {
			if time.Since(info.ModTime()) > staleTmp {
				_ = os.RemoveAll(filepath.Join(s.dir, name))
			}
			continue
		}
		if validKey(name) && s.ready(name) {
			out = append(out, depcache.Stored{Key: name, Name: name, Created: info.ModTime(), Verified: true})
		}
	}
	return out, nil
}

// Sizes adds up the bytes of each entry's files.
func (s dirStore) Sizes(context.Context) (map[string]int64, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for _, de := range des {
		var n int64
		_ = filepath.WalkDir(filepath.Join(s.dir, de.Name()), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
		sizes[de.Name()] = n
	}
	return sizes, nil
}

// Remove deletes an entry.
func (s dirStore) Remove(_ context.Context, name string) error {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return fmt.Errorf("not a cache entry: %q", name)
	}
	return os.RemoveAll(filepath.Join(s.dir, name))
}

// ready reports whether an entry's install finished.
func (s dirStore) ready(name string) bool {
	_, err := os.Stat(filepath.Join(s.dir, name, depcache.ReadyFile))
	return err == nil
}

// validKey accepts the policy's install keys (hex content hashes): they
// become directory names.
func validKey(k string) bool {
	if len(k) < 16 || len(k) > 128 {
		return false
	}
	for _, r := range k {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// acquireDeps returns the cache entry of job's install, installing it
// first if needed. An entry that lost its ready mark (removed by another
// host's eviction, say) is dropped and installed again, once.
func (e *Executor) acquireDeps(ctx context.Context, job executor.Job) (*depcache.Held, *executor.Result, error) {
	if e.deps == nil {
		return nil, nil, fmt.Errorf("%w: dependency installs (set RUNHOST_K8S_CACHE_CLAIM and RUNHOST_K8S_CACHE_ROOT)", ErrUnsupported)
	}
	key := job.Install.Key
	if !validKey(key) {
		return nil, nil, fmt.Errorf("install key %q is not a content hash", key)
	}
	install := func(ctx context.Context) (string, *executor.Result, error) { return e.install(ctx, job) }
	store := dirStore{dir: e.cfg.Cache.depsDir()}
	for attempt := 0; ; attempt++ {
		held, failed, err := e.deps.Acquire(ctx, key, install)
		if err != nil || failed != nil {
			return nil, failed, err
		}
		if store.ready(held.Name) || attempt > 0 {
			return held, nil, nil
		}
		e.deps.Release(held)
		e.deps.Discard(ctx, key)
	}
}

// install runs job's install step in a pod and publishes its output as a
// fresh directory of the cache volume under the install's key. The step
// itself never sees the cache volume: it writes its output directory to a
// memory-backed emptyDir of inst.DiskBytes (counted against the pod's
// memory), so the cap holds while it writes. A second container of the
// pod, the copy step, has that emptyDir read-only and the cache directory
// writable; only when the install succeeded does the host attach to it and
// have it copy the tree and mark it ready. A failed step's result is
// returned; its directory is removed.
func (e *Executor) install(ctx context.Context, job executor.Job) (string, *executor.Result, error) {
	inst := job.Install
	if inst.DiskBytes <= 0 {
		return "", nil, errors.New("install step without a size for its output (RUNHOST_INSTALL_DISK_MB)")
	}
	store := dirStore{dir: e.cfg.Cache.depsDir()}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := inst.Key + tmpMark + hex.EncodeToString(suffix[:])
	dir := filepath.Join(store.dir, tmp)
	if err := makeWritable(dir, job.User); err != nil {
		return "", nil, fmt.Errorf("dependency cache: %w", err)
	}
	drop := func() { _ = os.RemoveAll(dir) }

	step := executor.InstallStep(job)
	if inst.Egress {
		addr, err := e.egressAddr(ctx)
		if err != nil {
			drop()
			return "", nil, err
		}
		step.Env = executor.MergeEnv(step.Env, executor.ProxyEnv(addr))
	}
	frame, err := frames.Encode(step, func(h *initproc.Header) { h.Capped = inst.OutputDir })
	if err != nil {
		drop()
		return "", nil, err
	}
	cp := executor.InstallCopyStep(job, initDir+"/init")
	cpFrame, err := frames.Encode(cp, func(h *initproc.Header) { h.ReadyFile = inst.OutputDir + "/" + depcache.ReadyFile })
	if err != nil {
		drop()
		return "", nil, err
	}
	pod, err := e.installPodFor(step, depsSubPath(tmp), inst)
	if err != nil {
		drop()
		return "", nil, err
	}
	failed, err := e.runInstallPod(ctx, pod, step, frame, cp, cpFrame, inst)
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("install step: %w", err)
	}
	if failed != nil {
		drop()
		return "", failed, nil
	}
	if !store.ready(tmp) {
		drop()
		return "", nil, errors.New("install step: it succeeded but its output has no ready mark (is the cache claim the volume at RUNHOST_K8S_CACHE_ROOT?)")
	}
	// Publish. A concurrent host may have published the same key first:
	// then its entry is as good as this one.
	if err := os.Rename(dir, filepath.Join(store.dir, inst.Key)); err != nil {
		drop()
		if !store.ready(inst.Key) {
			return "", nil, fmt.Errorf("dependency cache: publish: %w", err)
		}
	}
	return inst.Key, nil, nil
}

// runInstallPod creates the install pod, runs the install in its run
// container and, when it succeeded, the copy in its copy container; it
// deletes the pod on every path. The result is the failed step's, or nil.
func (e *Executor) runInstallPod(ctx context.Context, pod *corev1.Pod, step executor.Job, frame []byte, cp executor.Job, cpFrame []byte, inst *executor.Install) (*executor.Result, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	created, err := e.core.createPod(cctx, pod)
	cancel()
	if err != nil {
		return nil, createError(err)
	}
	defer e.delete(ctx, created.Name)
	if err := e.waitRunning(ctx, created.Name); err != nil {
		return nil, err
	}
	res, err := e.attach(ctx, created.Name, step, frame)
	if err != nil {
		return nil, err
	}
	if failed := executor.InstallFailure(res, inst); failed != nil {
		return failed, nil
	}
	if err := e.waitPod(ctx, created.Name, func(p *corev1.Pod) bool { return containerRunning(p, "copy") }); err != nil {
		return nil, err
	}
	a, err := e.attachContainer(created.Name, "copy")
	if err != nil {
		return nil, err
	}
	cres, err := e.serve(ctx, created.Name, a, cp, cpFrame)
	if err != nil {
		return nil, fmt.Errorf("copy the install's output: %w", err)
	}
	if failed := executor.InstallFailure(cres, inst); failed != nil {
		failed.Duration += res.Duration
		return failed, nil
	}
	return nil, nil
}

// containerRunning reports whether the pod's container name runs.
func containerRunning(p *corev1.Pod, name string) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name && cs.State.Running != nil {
			return true
		}
	}
	return false
}

// installPodFor is the install pod: the run container (the install step)
// writes its output directory to a memory-backed emptyDir of
// inst.DiskBytes and never sees the cache claim; the copy container, as
// hardened, has that emptyDir read-only at executor.InstallSource and the
// cache directory (the claim's subPath) writable at the output directory,
// and its init waits for the copy's frame.
func (e *Executor) installPodFor(step executor.Job, subPath string, inst *executor.Install) (*corev1.Pod, error) {
	pod, err := e.stepPodFor(step)
	if err != nil {
		return nil, err
	}
	sc := pod.Spec.SecurityContext // the run user's, checked by podFor
	uid, gid := *sc.RunAsUser, *sc.RunAsGroup
	mem, cpu := resource.MustParse("128Mi"), resource.MustParse("500m")
	pod.Spec.Volumes = append(pod.Spec.Volumes,
		corev1.Volume{Name: "out", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: resource.NewQuantity(inst.DiskBytes, resource.BinarySI)}}},
		corev1.Volume{Name: "copy-code", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: resource.NewQuantity(1<<20, resource.BinarySI)}}},
		corev1.Volume{Name: "deps", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: e.cfg.Cache.Claim}}},
	)
	run := &pod.Spec.Containers[0]
	run.VolumeMounts = append(run.VolumeMounts, corev1.VolumeMount{Name: "out", MountPath: inst.OutputDir})
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
		Name:            "copy",
		Image:           e.cfg.InitImage,
		ImagePullPolicy: e.cfg.PullPolicy,
		Command:         []string{initDir + "/init"},
		Stdin:           true,
		StdinOnce:       true,
		SecurityContext: hardened(uid, gid),
		Resources: corev1.ResourceRequirements{
			Limits:   corev1.ResourceList{corev1.ResourceMemory: mem, corev1.ResourceCPU: cpu},
			Requests: corev1.ResourceList{corev1.ResourceMemory: mem, corev1.ResourceCPU: resource.MustParse("50m")},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "runhost", MountPath: initDir, ReadOnly: true},
			{Name: "copy-code", MountPath: executor.RunDir},
			{Name: "out", MountPath: executor.InstallSource, ReadOnly: true},
			{Name: "deps", MountPath: inst.OutputDir, SubPath: subPath},
		},
	})
	return pod, nil
}

// makeWritable creates dir for an install step running as user (uid:gid).
// A host running as root hands it over; any other host opens it up (a pod
// mounts only its own entry, so no other run can reach it).
func makeWritable(dir, user string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	u, err := executor.ParseUser(user)
	if err != nil {
		return err
	}
	if os.Getuid() == 0 {
		return os.Chown(dir, int(u.UID), int(u.GID))
	}
	if os.Getuid() != int(u.UID) {
		return os.Chmod(dir, 0o777)
	}
	return nil
}
