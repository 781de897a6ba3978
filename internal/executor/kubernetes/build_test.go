package kubernetes

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/runhost/runhost/internal/executor"
)

func TestBuildJobAsksBuildKitForWhatTheBuildAllows(t *testing.T) {
	cfg := BuildConfig{Repository: "reg:5000/builds", Insecure: true, Image: "builder", BuildkitConfig: []byte("[worker.oci]\n")}
	b := executor.Build{Key: keyA, Dockerfile: []byte("FROM x\n"), Context: []executor.File{{Path: "app.py", Content: []byte("print(1)")}},
		BuildArgs: map[string]string{"B": "2", "A": "1"}, Timeout: time.Minute, MemoryBytes: 1 << 30, NanoCPUs: 1e9, LogBytes: 1 << 20}
	job := buildJob(cfg, b, "reg:5000/builds:"+keyA[:32])
	cmd := strings.Join(job.Command, " ")
	for _, want := range []string{
		"--opt filename=" + dockerfileName,
		"--output type=image,name=reg:5000/builds:" + keyA[:32] + ",push=true,registry.insecure=true",
		"--opt force-network-mode=none",
		"--opt build-arg:A=1 --opt build-arg:B=2",
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %q lacks %q", cmd, want)
		}
	}
	var paths []string
	for _, f := range job.Files {
		paths = append(paths, f.Path)
	}
	if !slices.Equal(paths, []string{"context/app.py", "context/" + dockerfileName, "buildkitd.toml"}) {
		t.Errorf("files %v", paths)
	}
	if !slices.Contains(job.Env, "RUNHOST_BUILD_INSECURE=true") || !slices.Contains(job.Env, "BUILDKITD_CONFIG="+executor.RunDir+"/buildkitd.toml") {
		t.Errorf("env %v", job.Env)
	}
	b.Network = true
	job = buildJob(cfg, b, "r")
	if strings.Contains(strings.Join(job.Command, " "), "force-network-mode") {
		t.Error("a build with network allowed still forces none")
	}
}

func TestBuildPodGetsOnlyWhatRootlessBuildKitNeeds(t *testing.T) {
	e := &Executor{cfg: Config{InitImage: "init"}}
	job := buildJob(BuildConfig{Repository: "r", Image: "builder"}, executor.Build{Key: keyA, Dockerfile: []byte("FROM x"), Timeout: time.Minute, MemoryBytes: 1 << 30, NanoCPUs: 1e9}, "r:t")
	pod, err := e.podFor(job)
	if err != nil {
		t.Fatal(err)
	}
	asBuildPod(pod, BuildConfig{Seccomp: "runhost-builder.json"})
	sc := pod.Spec.Containers[0].SecurityContext
	if !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"SETUID", "SETGID"}) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities %+v", sc.Capabilities)
	}
	if sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost || *sc.SeccompProfile.LocalhostProfile != "runhost-builder.json" {
		t.Errorf("seccomp %+v", sc.SeccompProfile)
	}
	if !*sc.RunAsNonRoot || *sc.RunAsUser != 1000 || *sc.Privileged {
		t.Errorf("security context %+v", sc)
	}
	if isc := pod.Spec.InitContainers[0].SecurityContext; *isc.AllowPrivilegeEscalation || len(isc.Capabilities.Add) != 0 {
		t.Error("the init container got the builder's allowances")
	}
	asBuildPod(pod, BuildConfig{Seccomp: "unconfined"})
	if pod.Spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Errorf("Unconfined: %+v", pod.Spec.SecurityContext.SeccompProfile)
	}
}

func TestReadPushed(t *testing.T) {
	var out executor.BuiltImage
	stdout := `{"architecture":"amd64","config":{"Cmd":["python3","app.py"],"WorkingDir":"/app"}}` + "\nsha256:abc\n"
	if err := readPushed([]byte(stdout), "reg/b:k", &out); err != nil {
		t.Fatal(err)
	}
	if out.Ref != "reg/b:k@sha256:abc" || !slices.Equal(out.Cmd, []string{"python3", "app.py"}) || out.WorkingDir != "/app" {
		t.Errorf("%+v", out)
	}
	for _, bad := range []string{"", "sha256:abc", "{}\nnot-a-digest", "{\nsha256:abc"} {
		if err := readPushed([]byte(bad), "r", &out); err == nil {
			t.Errorf("readPushed(%q) accepted", bad)
		}
	}
}

func TestBuildError(t *testing.T) {
	log := "#5 [2/2] RUN exit 3\n#5 ERROR: process did not complete\n------\nerror: failed to solve: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3\n"
	if got := buildError([]byte(log)); !strings.HasPrefix(got, "failed to solve") || !strings.Contains(got, "exit code: 3") {
		t.Errorf("buildError = %q", got)
	}
	if got := buildError([]byte("something odd\n")); got != "the Dockerfile did not build: something odd" {
		t.Errorf("buildError without error line = %q", got)
	}
}
