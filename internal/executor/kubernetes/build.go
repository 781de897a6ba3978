package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/frames"
)

// BuildConfig configures Dockerfile builds: one pod per build in their own
// namespace, running BuildKit rootless (the builder image,
// scripts/builder-image.sh), pushing the image to Repository, from which
// the nodes pull it for the runs.
type BuildConfig struct {
	Repository string // e.g. registry.example.com/runhost/builds; empty: no builds
	Insecure   bool   // the registry speaks plain HTTP
	Namespace  string // of the build pods (Pod Security "baseline")
	Image      string // the builder image
	// Seccomp is the Localhost seccomp profile of build pods (installed on
	// every node; deploy/kubernetes/seccomp), or "Unconfined".
	Seccomp string
	// BuildkitConfig, if set, is buildkitd.toml for every build (registry
	// mirrors, plain-HTTP registries).
	BuildkitConfig []byte
}

// buildDiskBytes bounds what BuildKit may keep on disk during one build.
const buildDiskBytes = 8 << 30

// buildContextDir is where a build's context lands in the build pod.
const buildContextDir = executor.RunDir + "/context"

// dockerfileName is the Dockerfile's name inside the build context: not
// Dockerfile (a context may have its own), and refused as a context file.
const dockerfileName = executor.BuildDockerfile

// buildCache remembers what this host built, and shares a build between
// concurrent requests for the same key. The registry keeps the images.
type buildCache struct {
	mu       sync.Mutex
	built    map[string]executor.BuiltImage
	building map[string]chan struct{}
}

// Build builds b's Dockerfile in a build pod and pushes the image to the
// build repository, or returns what an earlier identical build of this
// host pushed. A Dockerfile that does not build is a result with Failed set.
func (e *Executor) Build(ctx context.Context, b executor.Build) (executor.BuiltImage, error) {
	if e.builder == nil {
		return executor.BuiltImage{}, fmt.Errorf("%w: Dockerfile builds (set RUNHOST_K8S_BUILD_REPOSITORY)", ErrUnsupported)
	}
	c := &e.builds
	for {
		c.mu.Lock()
		if built, ok := c.built[b.Key]; ok {
			c.mu.Unlock()
			built.Cached, built.Log, built.LogTruncated, built.Duration = true, nil, false, 0
			return built, nil
		}
		wait, running := c.building[b.Key]
		if !running {
			c.building[b.Key] = make(chan struct{})
		}
		c.mu.Unlock()
		if !running {
			break
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return executor.BuiltImage{}, ctx.Err()
		}
	}
	start := time.Now()
	built, err := e.build(ctx, b)
	built.Duration = time.Since(start)
	c.mu.Lock()
	if err == nil && !built.Failed {
		c.built[b.Key] = built
	}
	close(c.building[b.Key])
	delete(c.building, b.Key)
	c.mu.Unlock()
	return built, err
}

// build runs one build pod.
func (e *Executor) build(ctx context.Context, b executor.Build) (executor.BuiltImage, error) {
	cfg := e.cfg.Build
	ref := cfg.Repository + ":" + b.Key[:32]
	job := buildJob(cfg, b, ref)
	frame, err := frames.Encode(job, linger)
	if err != nil {
		return executor.BuiltImage{}, err
	}
	pod, err := e.builder.stepPodFor(job)
	if err != nil {
		return executor.BuiltImage{}, err
	}
	asBuildPod(pod, cfg)
	res, err := e.builder.runPod(ctx, pod, job, frame)
	if err != nil {
		return executor.BuiltImage{}, fmt.Errorf("build pod: %w", err)
	}
	out := executor.BuiltImage{Log: res.Stderr, LogTruncated: res.StderrTruncated}
	switch {
	case res.TimedOut:
		out.Failed, out.Error = true, fmt.Sprintf("the build did not finish within %s", b.Timeout)
	case res.OOMKilled:
		out.Failed, out.Error = true, "the build ran out of memory"
	case res.ExitCode == 125:
		return out, fmt.Errorf("the builder did not start: %s", lastLine(res.Stderr))
	case res.ExitCode != 0:
		out.Failed, out.Error = true, buildError(res.Stderr)
	default:
		if err := readPushed(res.Stdout, ref, &out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// buildJob is the build as a job for the builder image's runhost-build:
// the context and Dockerfile as files, buildctl's arguments as the command.
func buildJob(cfg BuildConfig, b executor.Build, ref string) executor.Job {
	files := make([]executor.File, 0, len(b.Context)+2)
	size := int64(len(b.Dockerfile))
	for _, f := range b.Context {
		files = append(files, executor.File{Path: "context/" + f.Path, Content: f.Content})
		size += int64(len(f.Content))
	}
	files = append(files, executor.File{Path: "context/" + dockerfileName, Content: b.Dockerfile})
	env := []string{"HOME=/home/build", "RUNHOST_BUILD_REF=" + ref}
	if len(cfg.BuildkitConfig) > 0 {
		files = append(files, executor.File{Path: "buildkitd.toml", Content: cfg.BuildkitConfig})
		env = append(env, "BUILDKITD_CONFIG="+executor.RunDir+"/buildkitd.toml")
	}
	output := "type=image,name=" + ref + ",push=true"
	if cfg.Insecure {
		output += ",registry.insecure=true"
		env = append(env, "RUNHOST_BUILD_INSECURE=true")
	}
	args := []string{"/usr/local/bin/runhost-build",
		"--frontend", "dockerfile.v0",
		"--local", "context=" + buildContextDir, "--local", "dockerfile=" + buildContextDir,
		"--opt", "filename=" + dockerfileName,
		"--output", output}
	if !b.Network {
		args = append(args, "--opt", "force-network-mode=none")
	}
	names := make([]string, 0, len(b.BuildArgs))
	for k := range b.BuildArgs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		args = append(args, "--opt", "build-arg:"+k+"="+b.BuildArgs[k])
	}
	labels := map[string]string{"runhost.step": executor.StageBuild}
	for k, v := range b.Labels {
		labels[k] = v
	}
	return executor.Job{
		ID:      "build-" + b.Key[:12],
		Image:   cfg.Image,
		Command: args,
		Env:     env,
		WorkDir: executor.RunDir,
		Files:   files,
		User:    "1000:1000", // the builder image's user, whose subordinate ids BuildKit maps
		Labels:  labels,
		Limits: executor.Limits{
			Timeout:     b.Timeout,
			MemoryBytes: b.MemoryBytes,
			NanoCPUs:    b.NanoCPUs,
			OutputBytes: b.LogBytes,
			TmpBytes:    64 << 20,
			RunDirBytes: size + 1<<20,
		},
	}
}

// asBuildPod gives a build pod what rootless BuildKit needs beyond a run
// pod: SETUID and SETGID for newuidmap's file capabilities (so privilege
// escalation stays allowed), a seccomp profile that permits user and
// mount namespaces, and a disk-backed directory for BuildKit's state.
func asBuildPod(pod *corev1.Pod, cfg BuildConfig) {
	seccomp := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
	if cfg.Seccomp != "" && !strings.EqualFold(cfg.Seccomp, "Unconfined") {
		seccomp = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: &cfg.Seccomp}
	}
	yes := true
	c := &pod.Spec.Containers[0]
	sc := *c.SecurityContext
	sc.AllowPrivilegeEscalation = &yes
	sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"SETUID", "SETGID"}}
	sc.SeccompProfile = seccomp
	c.SecurityContext = &sc
	pod.Spec.SecurityContext.SeccompProfile = seccomp
	pod.GenerateName = "runhost-build-"
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "buildkit", VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: resource.NewQuantity(buildDiskBytes, resource.BinarySI)},
	}})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "buildkit", MountPath: "/home/build/.local/share/buildkit"})
}

// readPushed reads what runhost-build printed after pushing ref: the image
// config (JSON), then its digest.
func readPushed(stdout []byte, ref string, out *executor.BuiltImage) error {
	text := strings.TrimSpace(string(stdout))
	i := strings.LastIndexByte(text, '\n')
	if i < 0 {
		return fmt.Errorf("the builder did not report the pushed image: %q", text)
	}
	digest := strings.TrimSpace(text[i+1:])
	if !strings.HasPrefix(digest, "sha256:") {
		return fmt.Errorf("the builder reported %q, not a digest", digest)
	}
	var cfg struct {
		Config struct {
			Entrypoint []string
			Cmd        []string
			WorkingDir string
		} `json:"config"`
	}
	if err := json.NewDecoder(bytes.NewReader([]byte(text[:i]))).Decode(&cfg); err != nil {
		return fmt.Errorf("the builder's image config: %w", err)
	}
	out.Ref = ref + "@" + digest
	out.Entrypoint, out.Cmd, out.WorkingDir = cfg.Config.Entrypoint, cfg.Config.Cmd, cfg.Config.WorkingDir
	return nil
}

// buildError is what a failed build says: buildctl's last "error:" line.
func buildError(stderr []byte) string {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "error:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "error:"))
		}
	}
	return "the Dockerfile did not build: " + lastLine(stderr)
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// isBuilt reports whether image is one of the build repository's.
func (e *Executor) isBuilt(image string) bool {
	repo := e.cfg.Build.Repository
	return repo != "" && strings.HasPrefix(image, repo+":")
}
