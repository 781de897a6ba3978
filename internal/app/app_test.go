package app

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/config"
	"github.com/runhost/runhost/internal/executor/fakeexec"
	"github.com/runhost/runhost/internal/policy"
)

// The policy gets the settings as parsed once by config: bytes, durations,
// the OCI runtime map, the run user, the indexes, the CA bundle's content.
func TestPolicyConfigFromSettings(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromEnv([]string{
		"RUNHOST_DEFAULT_MEMORY_MB=128", "RUNHOST_MAX_MEMORY_MB=1024", "RUNHOST_TMP_MB=32",
		"RUNHOST_DEFAULT_TIMEOUT_MS=1500", "RUNHOST_MAX_CPUS=2",
		"RUNHOST_OCI_RUNTIME=runc", "RUNHOST_OCI_RUNTIMES=python=runsc",
		"RUNHOST_RUN_USER=1001:1002",
		"RUNHOST_PIP_INDEX_URL=http://index:8000/simple", "RUNHOST_CA_BUNDLE=" + ca,
		"RUNHOST_INSTALL_DISK_MB=100", "RUNHOST_BUILD_IMAGE_MB=300",
		"RUNHOST_K8S_INIT_IMAGE=registry.example/runhost/init:1",
	})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := PolicyConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"DefaultMemory", pc.DefaultMemory, int64(128 << 20)},
		{"MaxMemory", pc.MaxMemory, int64(1024 << 20)},
		{"MinMemory", pc.MinMemory, int64(16 << 20)},
		{"TmpBytes", pc.TmpBytes, int64(32 << 20)},
		{"DefaultTimeout", pc.DefaultTimeout, 1500 * time.Millisecond},
		{"MaxCPUs", pc.MaxCPUs, 2.0},
		{"OCIRuntime", pc.OCIRuntime, "runc"},
		{"OCIRuntimes", pc.OCIRuntimes, map[string]string{"python": "runsc"}},
		{"User", pc.User, "1001:1002"},
		{"PipIndexURL", pc.PipIndexURL, "http://index:8000/simple"},
		{"NpmRegistry", pc.NpmRegistry, ""},
		{"CABundle", string(pc.CABundle), "PEM"},
		{"InstallDisk", pc.InstallDisk, int64(100 << 20)},
		{"BuildImageBytes", pc.BuildImageBytes, int64(300 << 20)},
		{"InternalImages", pc.InternalImages, []string{"registry.example/runhost/init:1"}},
		{"Grants", pc.Grants, map[string]policy.Grant(nil)},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

// A workspace root the host cannot use stops the start with an error that
// names the setting; a missing one is created.
func TestWorkspaceRootAtStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(root string) error {
		cfg, err := config.FromEnv([]string{
			"RUNHOST_PLUGIN_DIR=" + t.TempDir(), "RUNHOST_SELFTEST_ON_START=false", "RUNHOST_POOL=off",
			"RUNHOST_WORKSPACE_ROOT=" + root, "RUNHOST_WORKSPACE_QUOTA_MODE=off",
		})
		if err != nil {
			t.Fatal(err)
		}
		a, err := NewWithExecutor(context.Background(), cfg, hclog.NewNullLogger(), fakeexec.New())
		if err == nil {
			a.Close()
		}
		return err
	}
	for _, root := range []string{file, filepath.Join(file, "below")} {
		if err := start(root); err == nil || !strings.Contains(err.Error(), "RUNHOST_WORKSPACE_ROOT="+root) || !strings.Contains(err.Error(), "RUNHOST_WORKSPACE_ROOT=off") {
			t.Errorf("root %s: %v; want a start-up error naming the setting", root, err)
		}
	}
	fresh := filepath.Join(dir, "new", "workspace")
	if err := start(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || !fi.IsDir() {
		t.Errorf("the workspace root was not created: %v", err)
	}
	if entries, _ := os.ReadDir(fresh); len(entries) != 0 {
		t.Errorf("the write check left %v behind", entries)
	}
}
