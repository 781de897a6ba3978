package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/shared"
)

func testConfig() Config {
	return Config{
		DefaultTimeout: 10 * time.Second, MaxTimeout: 60 * time.Second,
		DefaultMemory: 256 << 20, MaxMemory: 1 << 30, MinMemory: 16 << 20,
		DefaultCPUs: 1, MaxCPUs: 2,
		Pids: 128, NoFile: 1024, FileSizeBytes: 64 << 20, TmpBytes: 64 << 20, RunDirBytes: 1 << 20, OutputBytes: 1 << 20,
		User: "1000:1000",
	}
}

func input(mutate func(*Input)) Input {
	in := Input{
		RunID:   "r1",
		Runtime: "python",
		Version: shared.Version{Version: "3.11", Image: "runhost/python:3.11"},
		Spec: shared.Spec{
			Image:   "runhost/python:3.11",
			Files:   []shared.File{{Path: "main.py", Content: []byte("print(1)")}},
			Command: []string{"python3", "main.py"},
			Env:     map[string]string{"B": "2", "A": "1"},
		},
	}
	if mutate != nil {
		mutate(&in)
	}
	return in
}

func TestJobDefaults(t *testing.T) {
	job, err := New(testConfig()).Job(input(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := executor.Limits{
		Timeout: 10 * time.Second, MemoryBytes: 256 << 20, NanoCPUs: 1e9,
		Pids: 128, NoFile: 1024, FileSizeBytes: 64 << 20, TmpBytes: 64 << 20, RunDirBytes: 1 << 20, OutputBytes: 1 << 20,
	}
	if job.Limits != want {
		t.Errorf("limits = %+v, want %+v", job.Limits, want)
	}
	if job.User != "1000:1000" || job.WorkDir != executor.RunDir || job.Image != "runhost/python:3.11" {
		t.Errorf("job = %+v", job)
	}
	if got := strings.Join(job.Env, " "); got != "A=1 B=2 HOME=/tmp" {
		t.Errorf("env = %q, want sorted with HOME=/tmp", got)
	}
	if job.Labels["runhost.run"] != "r1" || job.Labels["runhost.runtime"] != "python" {
		t.Errorf("labels = %v", job.Labels)
	}
}

func TestLimitPrecedence(t *testing.T) {
	p := New(testConfig())
	job, err := p.Job(input(func(in *Input) {
		in.Spec.Limits = shared.Limits{Timeout: 20 * time.Second, MemoryBytes: 512 << 20, CPUs: 0.5}
		in.Requested = Requested{Timeout: 5 * time.Second}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if job.Limits.Timeout != 5*time.Second || job.Limits.MemoryBytes != 512<<20 || job.Limits.NanoCPUs != 5e8 {
		t.Errorf("request beats plugin beats host default; got %+v", job.Limits)
	}
}

func TestRefusals(t *testing.T) {
	p := New(testConfig())
	tests := []struct {
		name   string
		mutate func(*Input)
		kind   error
		want   string
	}{
		{"request timeout above max", func(in *Input) { in.Requested.Timeout = time.Hour }, ErrLimitExceeded, "timeout_ms"},
		{"request memory above max", func(in *Input) { in.Requested.MemoryBytes = 2 << 30 }, ErrLimitExceeded, "memory_mb"},
		{"request memory below min", func(in *Input) { in.Requested.MemoryBytes = 1 << 20 }, ErrLimitExceeded, "minimum"},
		{"request cpus above max", func(in *Input) { in.Requested.CPUs = 3 }, ErrLimitExceeded, "cpus"},
		{"negative timeout", func(in *Input) { in.Requested.Timeout = -1 }, ErrLimitExceeded, "negative"},
		{"image not the version's", func(in *Input) { in.Spec.Image = "alpine" }, ErrSpecRefused, `image: "alpine" is not the image of version 3.11`},
		{"empty command", func(in *Input) { in.Spec.Command = nil }, ErrSpecRefused, "command: empty"},
		{"NUL in command", func(in *Input) { in.Spec.Command = []string{"a\x00"} }, ErrSpecRefused, "NUL"},
		{"file escapes", func(in *Input) { in.Spec.Files = []shared.File{{Path: "../x"}} }, ErrSpecRefused, `".."`},
		{"absolute file", func(in *Input) { in.Spec.Files = []shared.File{{Path: "/etc/x"}} }, ErrSpecRefused, "absolute"},
		{"duplicate file", func(in *Input) { in.Spec.Files = []shared.File{{Path: "a"}, {Path: "a"}} }, ErrSpecRefused, "twice"},
		{"file and dir clash", func(in *Input) { in.Spec.Files = []shared.File{{Path: "a"}, {Path: "a/b"}} }, ErrSpecRefused, "both a file and a directory"},
		{"files too big", func(in *Input) { in.Spec.Files = []shared.File{{Path: "a", Content: make([]byte, 2<<20)}} }, ErrSpecRefused, "do not fit"},
		{"work dir escapes", func(in *Input) { in.Spec.WorkDir = "../.." }, ErrSpecRefused, "work_dir"},
		{"bad env name", func(in *Input) { in.Spec.Env = map[string]string{"A-B": "x"} }, ErrSpecRefused, "env"},
		{"plugin timeout above max", func(in *Input) { in.Spec.Limits.Timeout = time.Hour }, ErrSpecRefused, "limits.timeout"},
		{"plugin memory above max", func(in *Input) { in.Spec.Limits.MemoryBytes = 4 << 30 }, ErrSpecRefused, "limits.memory_bytes"},
		{"plugin cpus above max", func(in *Input) { in.Spec.Limits.CPUs = 64 }, ErrSpecRefused, "limits.cpus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Job(input(tt.mutate))
			if !errors.Is(err, tt.kind) {
				t.Fatalf("got %v, want %v", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if errors.Is(err, ErrSpecRefused) && !strings.Contains(err.Error(), `plugin "python"`) {
				t.Errorf("a refused spec must name the plugin: %q", err)
			}
		})
	}
}

func BenchmarkJob(b *testing.B) {
	p := New(testConfig())
	in := input(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Job(in); err != nil {
			b.Fatal(err)
		}
	}
}
