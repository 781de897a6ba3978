// Package kubernetes runs jobs as pods: one pod per run in a namespace,
// hardened like the Docker executor's containers, with the same init and
// the same frames on the pod's attached stdin and stdout. It is the only
// package that imports client-go.
package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/depcache"
	"github.com/runhost/runhost/internal/executor/frames"
	"github.com/runhost/runhost/internal/executor/warmpool"
	"github.com/runhost/runhost/internal/initproc"
	"github.com/runhost/runhost/internal/workspace"
)

// Labels and annotations on run pods.
const (
	LabelManaged  = "runhost.managed"
	LabelInstance = "runhost.instance"
	LabelRun      = "runhost.run"
	AnnoDeadline  = "runhost.io/deadline" // unix seconds after which a sweep deletes the pod
)

// stepCPURequest is the most CPU (in nano-CPUs) an install or build pod
// requests; its limit stays the step's.
const stepCPURequest = 500_000_000

// initDir is where the init container puts runhost-init for the run.
const initDir = "/.runhost"

// Config configures the executor.
type Config struct {
	Kubeconfig string // empty: the in-cluster service account
	Namespace  string
	InitImage  string // an image holding runhost-init at /init
	// RuntimeClass is the runtimeClassName of pods whose job names no OCI
	// runtime (optional, e.g. gvisor); RuntimeClasses maps the OCI runtime
	// the policy chose for a job (executor.Job.OCIRuntime) to the
	// RuntimeClass its pod gets. A job whose OCI runtime is not mapped is
	// refused, never run without the sandbox the policy chose.
	RuntimeClass   string
	RuntimeClasses map[string]string
	PullPolicy     corev1.PullPolicy
	Workspace      WorkspaceVolume // optional: where workspace mounts come from
	Cache          CacheVolume     // optional: where installed dependencies are kept
	Egress         EgressConfig    // the proxy pod install steps reach the network through
	Build          BuildConfig     // optional: Dockerfile builds
	User           string          // uid:gid of warm pool pods (runs bring their own)
	Instance       string
	Logger         hclog.Logger
}

// WorkspaceVolume is the workspace volume as run pods see it: a
// PersistentVolumeClaim in the run namespace holding the same volume the
// host sees at RUNHOST_WORKSPACE_ROOT. A job's workspace mount source
// (Root/<session directory>) becomes that claim mounted with that subPath.
type WorkspaceVolume struct {
	Claim string // empty: workspaces are not supported
	Root  string // the mount sources' prefix (DIND_WORKSPACE_PATH)
}

// subPath turns a mount source into the claim's sub-directory: a session
// directory exactly as the workspace store resolves them — <name> in the
// shared namespace or .tenants/<key>/<name> in a key's private one —
// nothing below a session and nothing else.
func (w WorkspaceVolume) subPath(source string) (string, error) {
	if w.Claim == "" {
		return "", fmt.Errorf("%w: workspaces (set RUNHOST_K8S_WORKSPACE_CLAIM)", ErrUnsupported)
	}
	rel, ok := strings.CutPrefix(source, strings.TrimSuffix(w.Root, "/")+"/")
	if !ok || workspace.CheckSessionPath(rel) != nil {
		return "", fmt.Errorf("workspace mount %q is not a session directory below %q", source, w.Root)
	}
	return rel, nil
}

// Executor runs jobs as pods.
type Executor struct {
	cfg  Config
	core *coreClient
	rest *rest.Config
	log  hclog.Logger

	pool    *warmpool.Pool[*pooledPod] // nil: no warm pool
	deps    *depcache.Cache            // nil: no cache volume, so no installs
	egress  egressPod
	builder *Executor // nil: no builds; else this executor in the build namespace
	builds  buildCache
	deletes sync.WaitGroup // pod deletions still going
}

var _ executor.Executor = (*Executor)(nil)

// ErrUnsupported marks a job the Kubernetes executor cannot run yet.
var ErrUnsupported = executor.ErrUnsupported

// New connects to the cluster.
func New(cfg Config) (*Executor, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes config: %w", err)
	}
	rc.QPS, rc.Burst = 50, 100
	core, err := newCoreClient(rc, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	if cfg.PullPolicy == "" {
		cfg.PullPolicy = corev1.PullIfNotPresent
	}
	cfg.User = cmp.Or(cfg.User, "1000:1000")
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	e := &Executor{cfg: cfg, core: core, rest: rc, log: log}
	if cfg.Cache.Claim != "" {
		if cfg.Cache.Root == "" {
			return nil, errors.New("a cache claim needs the directory where the host sees the same volume (RUNHOST_K8S_CACHE_ROOT)")
		}
		e.deps = depcache.New(dirStore{dir: cfg.Cache.depsDir()}, cfg.Cache.MaxEntries, cfg.Cache.MaxBytes, log)
	}
	if cfg.Build.Repository != "" {
		if cfg.Build.Image == "" || cfg.Build.Namespace == "" {
			return nil, errors.New("builds need the builder image and the build namespace (RUNHOST_K8S_BUILDER_IMAGE, RUNHOST_K8S_BUILD_NAMESPACE)")
		}
		bcore, err := newCoreClient(rc, cfg.Build.Namespace)
		if err != nil {
			return nil, err
		}
		bcfg := cfg
		bcfg.Namespace = cfg.Build.Namespace
		e.builder = &Executor{cfg: bcfg, core: bcore, rest: rc, log: log.Named("build")}
		e.builds = buildCache{built: map[string]executor.BuiltImage{}, building: map[string]chan struct{}{}}
	}
	return e, nil
}

// Ping reports whether the API server answers.
func (e *Executor) Ping(ctx context.Context) error {
	if err := e.core.ready(ctx); err != nil {
		return fmt.Errorf("%w: %v", executor.ErrEngineUnavailable, err)
	}
	return nil
}

// ImageExists reports whether a node of the cluster has image.
func (e *Executor) ImageExists(ctx context.Context, image string) (bool, error) {
	nodes, err := e.core.listNodes(ctx)
	if err != nil {
		return false, fmt.Errorf("%w: %v", executor.ErrEngineUnavailable, err)
	}
	want := normalise(image)
	for _, n := range nodes.Items {
		for _, img := range n.Status.Images {
			for _, name := range img.Names {
				if normalise(name) == want {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// normalise turns runhost/python:3.11 and docker.io/runhost/python:3.11 into one name.
func normalise(ref string) string {
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "library/")
	return ref
}

// StartSession starts a session pod, hardened like a run's, and attaches
// to it for the session's whole life: runs go over the attachment as frames
// (frames.Session), so a run costs a round trip to init, not a pod. The pod
// lives at most job.Limits.Timeout (the session's lifetime) and is deleted
// when the session ends.
func (e *Executor) StartSession(ctx context.Context, job executor.Job) (executor.Session, error) {
	if job.Network != nil {
		return nil, ErrNoRunNetwork
	}
	name, a, err := e.startAttached(ctx, job)
	if err != nil {
		return nil, err
	}
	return frames.NewSession(a.stdin, a.stdout, func() {
		a.detach()
		e.delete(context.Background(), name)
	}), nil
}

// startAttached creates a pod for job, waits until its init runs and
// attaches to it, for a session or the warm pool. On error nothing is left.
func (e *Executor) startAttached(ctx context.Context, job executor.Job) (string, *attachment, error) {
	pod, err := e.podFor(job)
	if err != nil {
		return "", nil, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	created, err := e.core.createPod(cctx, pod)
	cancel()
	if err != nil {
		return "", nil, createError(err)
	}
	if err := e.waitRunning(ctx, created.Name); err != nil {
		e.delete(ctx, created.Name)
		return "", nil, err
	}
	a, err := e.attachPod(created.Name)
	if err != nil {
		e.delete(ctx, created.Name)
		return "", nil, err
	}
	return created.Name, a, nil
}

// Run runs job in a ready pod of the warm pool, or else a fresh pod, and
// always deletes the pod afterwards. An install step, if any, comes first
// (or from the cache) and its output is mounted read-only.
func (e *Executor) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	if job.Network != nil {
		return executor.Result{}, ErrNoRunNetwork
	}
	var mounts []claimMount
	var info *executor.StepInfo
	if job.Install != nil {
		held, failed, err := e.acquireDeps(ctx, job)
		if err != nil {
			return executor.Result{}, err
		}
		if failed != nil {
			return *failed, nil
		}
		defer e.deps.Release(held)
		info = &held.Info
		mounts = append(mounts, claimMount{volume: "deps", claim: e.cfg.Cache.Claim, subPath: depsSubPath(held.Name), target: job.Install.OutputDir, readOnly: true})
	}
	frame, err := frames.Encode(job, linger)
	if err != nil {
		return executor.Result{}, err
	}
	if pp := e.takePooled(job); pp != nil {
		defer e.delete(ctx, pp.name)
		return e.serve(ctx, pp.name, pp.att, job, frame)
	}
	pod, err := e.podFor(job, mounts...)
	if err != nil {
		return executor.Result{}, err
	}
	res, err := e.runPod(ctx, pod, job, frame)
	if err != nil {
		return executor.Result{}, err
	}
	res.Stage, res.Install = executor.StageRun, info
	return res, nil
}

// runPod creates pod, runs job's frame in it and deletes it.
func (e *Executor) runPod(ctx context.Context, pod *corev1.Pod, job executor.Job, frame []byte) (executor.Result, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	created, err := e.core.createPod(cctx, pod)
	cancel()
	if err != nil {
		return executor.Result{}, createError(err)
	}
	defer e.delete(ctx, created.Name)

	if err := e.waitRunning(ctx, created.Name); err != nil {
		return executor.Result{}, err
	}
	return e.attach(ctx, created.Name, job, frame)
}

// linger keeps init alive after its exit frame until the pod is deleted
// (at most lingerMS): an attach stream drops what is still in flight when
// the container ends, so a run that ends right after much output (stopped
// at the output limit, say) lost its tail and its exit.
func linger(h *initproc.Header) { h.LingerMS = lingerMS }

const lingerMS = 10_000

// waitRunning watches the pod until its container runs (or has ended).
func (e *Executor) waitRunning(ctx context.Context, name string) error {
	return e.waitPod(ctx, name, func(p *corev1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil || cs.State.Terminated != nil {
				return true
			}
		}
		return false
	})
}

// waitPod watches the pod until done says so, reporting what keeps it
// from getting there: no capacity, a missing image, a failure. An API
// server may end a watch at any time (a restart, a dropped connection, its
// own timeouts); the watch is then opened again, and its first event is the
// pod as it is, so nothing is missed. Only a watch that cannot be kept open
// means the engine is unavailable.
func (e *Executor) waitPod(ctx context.Context, name string, done func(*corev1.Pod) bool) error {
	unschedulable := time.NewTimer(30 * time.Second)
	defer unschedulable.Stop()
	var lastReason string
	var lastErr error
	for attempt := 0; attempt <= maxRewatch; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		w, err := e.core.watchPods(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
		if err != nil {
			lastErr = fmt.Errorf("%w: watch pod: %v", executor.ErrEngineUnavailable, err)
			continue
		}
		ended, err := followPod(ctx, w, unschedulable.C, &lastReason, done)
		w.Stop()
		if !ended {
			return err
		}
		lastErr = fmt.Errorf("%w: the pod watch ended %d times", executor.ErrEngineUnavailable, attempt+1)
	}
	return lastErr
}

// maxRewatch is how often waitPod opens a watch again after it ended.
const maxRewatch = 5

// followPod reads one watch of a pod until done says so or something keeps
// the pod from getting there (ended false, err says what, nil for done), or
// until the watch ends (ended true).
func followPod(ctx context.Context, w watch.Interface, unschedulable <-chan time.Time, lastReason *string, done func(*corev1.Pod) bool) (ended bool, err error) {
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-unschedulable:
			return false, fmt.Errorf("%w: the pod was not scheduled within 30 s (%s)", executor.ErrNoCapacity, *lastReason)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return true, nil
			}
			if ev.Type == watch.Deleted {
				return false, fmt.Errorf("the run's pod was deleted before it ran")
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue // a watch error event: the watch ends after it
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					*lastReason = c.Reason + ": " + c.Message
				}
			}
			if done(p) {
				return false, nil
			}
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff" || w.Reason == "ErrImageNeverPull" || w.Reason == "InvalidImageName") {
					return false, fmt.Errorf("%w: %s: %s", executor.ErrImageMissing, w.Reason, w.Message)
				}
			}
			if p.Status.Phase == corev1.PodFailed {
				return false, fmt.Errorf("the run's pod failed to start: %s %s", p.Status.Reason, p.Status.Message)
			}
		}
	}
}

// attachment is a live attach stream to a pod's run container: init's
// stdin and its framed stdout. done is closed when the stream has ended,
// err then says why.
type attachment struct {
	stdin  *io.PipeWriter
	stdout *io.PipeReader
	done   chan struct{}
	err    error
	detach func()
}

// attachPod attaches to the run container of pod name (SPDY, through the
// API server and the kubelet). Writes to stdin fail once the stream ends.
func (e *Executor) attachPod(name string) (*attachment, error) {
	return e.attachContainer(name, "run")
}

// attachContainer attaches to one container of pod name.
func (e *Executor) attachContainer(name, container string) (*attachment, error) {
	spdy, err := remotecommand.NewSPDYExecutor(e.rest, "POST", e.core.attachContainer(name, container).URL())
	if err != nil {
		return nil, err
	}
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	actx, cancel := context.WithCancel(context.Background())
	a := &attachment{stdin: stdinW, stdout: stdoutR, done: make(chan struct{})}
	a.detach = func() { stdinW.Close(); cancel() }
	go func() {
		a.err = spdy.StreamWithContext(actx, remotecommand.StreamOptions{
			Stdin:  stdinR,
			Stdout: stdoutW,
			Stderr: io.Discard, // init's own complaints before any frame
		})
		stdoutW.CloseWithError(a.err)
		stdinR.CloseWithError(io.ErrClosedPipe) // a write now fails instead of waiting
		close(a.done)
	}()
	return a, nil
}

// attach attaches to pod name and runs job in it.
func (e *Executor) attach(ctx context.Context, name string, job executor.Job, frame []byte) (executor.Result, error) {
	a, err := e.attachPod(name)
	if err != nil {
		return executor.Result{}, err
	}
	return e.serve(ctx, name, a, job, frame)
}

// serve sends the frame and stdin to init over a, reads its frames back
// until the exit, and detaches.
func (e *Executor) serve(ctx context.Context, name string, a *attachment, job executor.Job, frame []byte) (executor.Result, error) {
	defer a.detach()
	out := frames.NewReader(job.Limits.OutputBytes, job.Output)
	go out.Read(a.stdout)
	go func() {
		// Errors are expected when the program exits without reading stdin.
		if _, err := a.stdin.Write(frame); err == nil {
			if _, err := a.stdin.Write(job.Stdin); err == nil && job.StdinStream != nil {
				_, _ = io.Copy(a.stdin, job.StdinStream) // interactive: as it arrives
			}
		}
		_ = a.stdin.Close()
	}()
	backstop := time.NewTimer(job.Limits.Timeout + 10*time.Second)
	defer backstop.Stop()
	select {
	case ex := <-out.Exit():
		return out.Result(ex), nil
	case <-out.Done():
		select {
		case ex := <-out.Exit():
			return out.Result(ex), nil
		default:
		}
		<-a.done
		return e.fromStatus(ctx, name, out, a.err)
	case <-backstop.C:
		res := out.Result(executorExit(137))
		res.TimedOut = true
		return res, nil
	case <-ctx.Done():
		return executor.Result{}, ctx.Err()
	}
}

// fromStatus reports a run whose init ended without an exit frame, from
// the pod's status (OOM-killed init, say).
func (e *Executor) fromStatus(ctx context.Context, name string, out *frames.Reader, streamErr error) (executor.Result, error) {
	for range 20 {
		p, err := e.core.getPod(context.WithoutCancel(ctx), name)
		if err != nil {
			return executor.Result{}, fmt.Errorf("%w: %v", executor.ErrEngineUnavailable, err)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				res := out.Result(executorExit(int(t.ExitCode)))
				res.OOMKilled = t.Reason == "OOMKilled"
				return res, nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return executor.Result{}, fmt.Errorf("the run's output ended without an exit (%v)", streamErr)
}

// delete removes the pod at once, with its own deadline.
func (e *Executor) delete(ctx context.Context, name string) {
	e.deletes.Add(1)
	go func() {
		defer e.deletes.Done()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		zero := int64(0)
		bg := metav1.DeletePropagationBackground
		err := e.core.deletePod(dctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			e.log.Warn("delete pod (the sweep will retry)", "pod", name, "error", err)
		}
	}()
}

// Close deletes the warm pool's pods, the egress proxy pod and waits for every deletion still
// going.
func (e *Executor) Close() error {
	e.pool.Close()
	e.stopEgress()
	if e.builder != nil {
		e.builder.deletes.Wait()
	}
	e.deletes.Wait()
	return nil
}

// Sweep deletes run pods (and build pods) past their deadline. It returns
// how many.
func (e *Executor) Sweep(ctx context.Context) (int, error) {
	n, err := e.sweep(ctx)
	if err == nil && e.builder != nil {
		var b int
		b, err = e.builder.sweep(ctx)
		n += b
	}
	return n, err
}

func (e *Executor) sweep(ctx context.Context) (int, error) {
	list, err := e.core.listPods(ctx, metav1.ListOptions{LabelSelector: LabelManaged + "=true"})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", executor.ErrEngineUnavailable, err)
	}
	now := time.Now().Unix()
	n := 0
	for _, p := range list.Items {
		deadline, err := strconv.ParseInt(p.Annotations[AnnoDeadline], 10, 64)
		if err == nil && deadline > now {
			continue
		}
		e.delete(ctx, p.Name)
		n++
	}
	return n, nil
}

// claimMount mounts a sub-directory of a PersistentVolumeClaim.
type claimMount struct {
	volume, claim, subPath, target string
	readOnly                       bool
}

// podFor is the whole hardening of a run pod in one place. mounts are the
// claims the job needs besides its workspace (installed dependencies).
func (e *Executor) podFor(job executor.Job, mounts ...claimMount) (*corev1.Pod, error) {
	l := job.Limits
	user, err := executor.ParseUser(job.User)
	if err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	class, err := e.runtimeClass(job.OCIRuntime)
	if err != nil {
		return nil, err
	}
	uid, gid := int64(user.UID), int64(user.GID)
	yes, no := true, false
	mem := resource.NewQuantity(l.MemoryBytes, resource.BinarySI)
	cpu := resource.NewMilliQuantity(l.NanoCPUs/1e6, resource.DecimalSI)
	deadline := int64(math.Ceil(l.Timeout.Seconds())) + 60
	tmp := resource.NewQuantity(l.TmpBytes, resource.BinarySI)
	code := resource.NewQuantity(l.RunDirBytes, resource.BinarySI)
	labels := map[string]string{LabelManaged: "true", LabelInstance: e.cfg.Instance, LabelRun: job.ID}
	for k, v := range job.Labels {
		if _, ok := labels[k]; !ok && validLabelValue(v) {
			labels[k] = v
		}
	}
	secure := hardened(uid, gid)
	resources := corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *cpu},
		Requests: corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *cpu},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "runhost-",
			Labels:       labels,
			Annotations:  map[string]string{AnnoDeadline: strconv.FormatInt(time.Now().Add(l.Timeout+2*time.Minute).Unix(), 10)},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: new(int64),
			HostNetwork:                   false,
			HostPID:                       false,
			HostIPC:                       false,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: &yes,
				RunAsUser:    &uid,
				RunAsGroup:   &gid,
				FSGroup:      &gid,
				// A cache or workspace volume is not chowned file by file at
				// every pod start; only a fresh volume's root is.
				FSGroupChangePolicy: new(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			InitContainers: []corev1.Container{{
				Name:            "init",
				Image:           e.cfg.InitImage,
				ImagePullPolicy: e.cfg.PullPolicy,
				Command:         []string{"/init", "--install", initDir + "/init"},
				SecurityContext: secure,
				Resources: corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi"), corev1.ResourceCPU: resource.MustParse("100m")},
					Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi"), corev1.ResourceCPU: resource.MustParse("100m")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "runhost", MountPath: initDir}},
			}},
			Containers: []corev1.Container{{
				Name:            "run",
				Image:           job.Image,
				ImagePullPolicy: e.pullPolicy(job.Image),
				Command:         []string{initDir + "/init"},
				Stdin:           true,
				StdinOnce:       true,
				SecurityContext: secure,
				Resources:       resources,
				VolumeMounts: []corev1.VolumeMount{
					{Name: "runhost", MountPath: initDir, ReadOnly: true},
					{Name: "tmp", MountPath: "/tmp"},
					{Name: "code", MountPath: executor.RunDir},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "runhost", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: resource.NewQuantity(16<<20, resource.BinarySI)}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: tmp}}},
				{Name: "code", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: code}}},
			},
		},
	}
	if class != "" {
		pod.Spec.RuntimeClassName = &class
	}
	if ws := job.Workspace; ws != nil {
		sub, err := e.cfg.Workspace.subPath(ws.Source)
		if err != nil {
			return nil, err
		}
		// The session directory, read-write, at the same path as on Docker.
		// The mount is at the session level, which no run can replace.
		mounts = append(mounts, claimMount{volume: "workspace", claim: e.cfg.Workspace.Claim, subPath: sub, target: ws.Target})
	}
	run := &pod.Spec.Containers[0]
	for _, m := range mounts {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: m.volume, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: m.claim, ReadOnly: m.readOnly},
		}})
		run.VolumeMounts = append(run.VolumeMounts, corev1.VolumeMount{Name: m.volume, MountPath: m.target, SubPath: m.subPath, ReadOnly: m.readOnly})
	}
	return pod, nil
}

// stepPodFor is podFor for an install or a build: its CPU limit is the
// host's largest, and it need not hold that much of a node while it waits
// for downloads, so it requests at most stepCPURequest.
func (e *Executor) stepPodFor(job executor.Job, mounts ...claimMount) (*corev1.Pod, error) {
	pod, err := e.podFor(job, mounts...)
	if err != nil {
		return nil, err
	}
	if job.Limits.NanoCPUs > stepCPURequest {
		pod.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(stepCPURequest/1e6, resource.DecimalSI)
	}
	return pod, nil
}

// hardened is every container's security context: non-root, read-only
// root, no capabilities, no privilege escalation, the runtime's seccomp.
func hardened(uid, gid int64) *corev1.SecurityContext {
	yes, no := true, false
	return &corev1.SecurityContext{
		RunAsNonRoot:             &yes,
		RunAsUser:                &uid,
		RunAsGroup:               &gid,
		ReadOnlyRootFilesystem:   &yes,
		AllowPrivilegeEscalation: &no,
		Privileged:               &no,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// pullPolicy is the configured one, except for built images: the nodes
// pull those from the build repository.
func (e *Executor) pullPolicy(image string) corev1.PullPolicy {
	if e.isBuilt(image) {
		return corev1.PullIfNotPresent
	}
	return e.cfg.PullPolicy
}

// runtimeClass is the RuntimeClass of a pod whose job asks for the OCI
// runtime oci: the configured default when it asks for none, else the class
// mapped to it (RUNHOST_K8S_RUNTIME_CLASSES). The configuration refuses to
// start with an OCI runtime that has no class; this refuses the job too.
func (e *Executor) runtimeClass(oci string) (string, error) {
	if oci == "" {
		return e.cfg.RuntimeClass, nil
	}
	if class, ok := e.cfg.RuntimeClasses[oci]; ok && class != "" {
		return class, nil
	}
	return "", fmt.Errorf("%w: the OCI runtime %q, which has no RuntimeClass (map it with RUNHOST_K8S_RUNTIME_CLASSES)", ErrUnsupported, oci)
}

func validLabelValue(v string) bool {
	if len(v) > 63 {
		return false
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// createError maps a refused pod: a quota is a 429, anything about
// capacity or admission a 503.
func createError(err error) error {
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		return fmt.Errorf("%w: the run namespace's ResourceQuota is used up: %v", executor.ErrBusy, err)
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err):
		return fmt.Errorf("%w: the cluster refused the run's pod: %v", executor.ErrNoCapacity, err)
	}
	return fmt.Errorf("%w: create pod: %v", executor.ErrEngineUnavailable, err)
}
