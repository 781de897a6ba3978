package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/executor"
)

// The Docker executor refuses root with the same check as the Kubernetes
// executor and the configuration (executor.ParseUser): "00:1000" used to
// pass the string comparison with "0".
func TestRootIsRefusedLikeOnKubernetes(t *testing.T) {
	e := &Executor{init: newInitVolume(nil)}
	limits := executor.Limits{MemoryBytes: 64 << 20, NanoCPUs: 1e9, TmpBytes: 1 << 20, RunDirBytes: 1 << 20}
	for _, user := range []string{"0:0", "0:1000", "1000:0", "00:1000", "1000:000", "", "root", "1000", "-1:1000"} {
		_, _, err := e.containerConfig(step{Job: executor.Job{Image: "img", User: user, Limits: limits}}, nil)
		if err == nil {
			t.Errorf("user %q: a container config was made", user)
		}
	}
	_, _, err := e.containerConfig(step{Job: executor.Job{Image: "img", User: "0:0", Limits: limits}}, nil)
	if !errors.Is(err, executor.ErrRootUser) {
		t.Errorf("root: %v, want ErrRootUser", err)
	}
	cfg, host, err := e.containerConfig(step{Job: executor.Job{Image: "img", User: "1001:1002", Limits: limits}}, []string{"/data"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "1001:1002" {
		t.Errorf("container user %q", cfg.User)
	}
	for _, dir := range []string{executor.RunDir, "/data"} {
		if want := "uid=1001,gid=1002"; !strings.Contains(host.Tmpfs[dir], want) {
			t.Errorf("tmpfs %s: %q lacks %s", dir, host.Tmpfs[dir], want)
		}
	}
}
