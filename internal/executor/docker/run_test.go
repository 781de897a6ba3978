package docker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"

	"github.com/runhost/runhost/internal/executor"
)

const testImage = "runhost/python:3.11"

func testLimits() executor.Limits {
	return executor.Limits{
		Timeout: 10 * time.Second, MemoryBytes: 128 << 20, NanoCPUs: 5e8, Pids: 64,
		NoFile: 256, FileSizeBytes: 1 << 20, TmpBytes: 8 << 20, RunDirBytes: 4 << 20, OutputBytes: 1 << 16,
	}
}

// testJob is a job whose command the fake engine's init plays.
func testJob(id, command string) executor.Job {
	return executor.Job{
		ID: id, Image: testImage, Command: strings.Fields(command),
		User: "1000:1000", Limits: testLimits(),
	}
}

// The container a run gets carries the whole hardening, whatever the job:
// asserted on what the engine receives.
func TestRunContainerConfig(t *testing.T) {
	ws := &executor.Mount{Source: "/var/lib/runhost/workspaces/k1/s1", Target: "/workspace"}
	tests := []struct {
		name    string
		image   []string // VOLUMEs the image declares
		job     func(j *executor.Job)
		runtime string
		mounts  []mount.Mount     // after the init volume
		tmpfs   map[string]string // besides /tmp and the run directory: path → an option it has
		noTmpfs []string
	}{
		{name: "a plain run", job: func(*executor.Job) {}},
		{
			name:    "in gVisor, with a workspace",
			job:     func(j *executor.Job) { j.OCIRuntime, j.Workspace = "runsc", ws },
			runtime: "runsc",
			mounts: []mount.Mount{{
				Type: mount.TypeBind, Source: ws.Source, Target: ws.Target,
				BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate},
			}},
		},
		{
			name:  "another user, an image declaring VOLUMEs",
			image: []string{"/data", "/workspace/"},
			job: func(j *executor.Job) {
				j.User, j.Workspace = "1234:5678", ws
				j.Labels = map[string]string{"runhost.runtime": "python"}
			},
			mounts: []mount.Mount{{
				Type: mount.TypeBind, Source: ws.Source, Target: ws.Target,
				BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate},
			}},
			tmpfs:   map[string]string{"/data": "noexec,nosuid,nodev,size=8388608,mode=0755,uid=1234,gid=5678"},
			noTmpfs: []string{"/workspace"}, // the workspace is mounted there
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEngine(testImage)
			f.images[testImage] = tt.image
			e := newTestExecutor(t, f)
			job := testJob("r1", "exit 0")
			tt.job(&job)
			before := time.Now().Unix()
			res, err := e.Run(context.Background(), job)
			after := time.Now().Unix()
			if err != nil {
				t.Fatal(err)
			}
			if want := "ran in runhost-r1"; string(res.Stdout) != want || res.ExitCode != 0 {
				t.Errorf("result: exit %d, stdout %q; want 0, %q", res.ExitCode, res.Stdout, want)
			}
			runs := f.byName("runhost-r1")
			if len(runs) != 1 {
				t.Fatalf("%d containers named runhost-r1, want 1", len(runs))
			}
			cfg, host := runs[0].config, runs[0].host

			uid, gid, _ := strings.Cut(job.User, ":")
			if cfg.User != job.User || cfg.User == "" || uid == "0" || gid == "0" {
				t.Errorf("user %q, want the job's %q", cfg.User, job.User)
			}
			if cfg.Image != job.Image || !slices.Equal(cfg.Entrypoint, []string{"/.runhost/init"}) {
				t.Errorf("image %q entrypoint %q", cfg.Image, cfg.Entrypoint)
			}
			if !host.ReadonlyRootfs || host.Privileged {
				t.Errorf("read-only rootfs %v, privileged %v", host.ReadonlyRootfs, host.Privileged)
			}
			if !slices.Equal(host.CapDrop, []string{"ALL"}) || len(host.CapAdd) != 0 {
				t.Errorf("cap drop %q, cap add %q; want ALL and none", host.CapDrop, host.CapAdd)
			}
			if !slices.Contains(host.SecurityOpt, "no-new-privileges") {
				t.Errorf("security options %q lack no-new-privileges", host.SecurityOpt)
			}
			if host.NetworkMode != "none" || !cfg.NetworkDisabled {
				t.Errorf("network mode %q, disabled %v; want none", host.NetworkMode, cfg.NetworkDisabled)
			}
			if host.IpcMode != "private" || host.Runtime != tt.runtime {
				t.Errorf("ipc %q runtime %q; want private, %q", host.IpcMode, host.Runtime, tt.runtime)
			}
			l, r := job.Limits, host.Resources
			if r.Memory != l.MemoryBytes || r.MemorySwap != l.MemoryBytes || r.NanoCPUs != l.NanoCPUs ||
				r.PidsLimit == nil || *r.PidsLimit != l.Pids {
				t.Errorf("resources %+v do not match limits %+v (swap must equal memory)", r, l)
			}

			wantTmpfs := map[string]string{
				"/tmp":          fmt.Sprintf("noexec,nosuid,nodev,size=%d,", l.TmpBytes),
				executor.RunDir: fmt.Sprintf("noexec,nosuid,nodev,size=%d,mode=0755,uid=%s,gid=%s", l.RunDirBytes, uid, gid),
			}
			for p, opt := range tt.tmpfs {
				wantTmpfs[p] = opt
			}
			for p, opt := range wantTmpfs {
				if got, ok := host.Tmpfs[p]; !ok || !strings.Contains(got, opt) {
					t.Errorf("tmpfs %s: %q, want it with %q", p, got, opt)
				}
			}
			for _, p := range tt.noTmpfs {
				if got, ok := host.Tmpfs[p]; ok {
					t.Errorf("tmpfs %s: %q, want none", p, got)
				}
			}
			if len(host.Tmpfs) != len(wantTmpfs) {
				t.Errorf("tmpfs %q, want %d of them", host.Tmpfs, len(wantTmpfs))
			}

			initMount := mount.Mount{
				Type: mount.TypeVolume, Source: e.init.name, Target: "/.runhost", ReadOnly: true,
				VolumeOptions: &mount.VolumeOptions{NoCopy: true},
			}
			wantMounts := append([]mount.Mount{initMount}, tt.mounts...)
			if !reflect.DeepEqual(host.Mounts, wantMounts) {
				t.Errorf("mounts\n%+v\nwant\n%+v", host.Mounts, wantMounts)
			}

			labels := cfg.Labels
			for k, v := range job.Labels {
				if labels[k] != v {
					t.Errorf("label %s=%q, want the job's %q", k, labels[k], v)
				}
			}
			if labels[LabelManaged] != "true" || labels[LabelInstance] != "test-instance" || labels[LabelOwner] != e.owner {
				t.Errorf("labels %q lack managed, this instance or this owner", labels)
			}
			deadline, err := strconv.ParseInt(labels[LabelDeadline], 10, 64)
			margin := int64((l.Timeout + sweepMargin).Seconds())
			if err != nil || deadline < before+margin || deadline > after+margin {
				t.Errorf("deadline label %q, want the run's timeout plus %v from now", labels[LabelDeadline], sweepMargin)
			}

			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			f.checkNothingLeft(t)
		})
	}
}

// Every container a run creates is removed exactly once, whichever way
// the run ends, and the engine is left with none.
func TestRunRemovesItsContainerOnEveryPath(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fakeEngine, job *executor.Job)
		cancel  bool // cancel the run once init has its frame
		wantErr error
		created int // containers of the run: 0 or 1
		killed  bool
		check   func(t *testing.T, res executor.Result)
	}{
		{
			name:    "normal exit",
			setup:   func(_ *fakeEngine, j *executor.Job) { j.Command = []string{"exit", "3"} },
			created: 1,
			check: func(t *testing.T, res executor.Result) {
				if res.ExitCode != 3 || res.TimedOut {
					t.Errorf("exit %d timed out %v, want 3", res.ExitCode, res.TimedOut)
				}
			},
		},
		{
			name:    "init reports a timeout",
			setup:   func(_ *fakeEngine, j *executor.Job) { j.Command = []string{"timeout"} },
			created: 1,
			check: func(t *testing.T, res executor.Result) {
				if !res.TimedOut {
					t.Error("not timed out")
				}
			},
		},
		{
			name: "init cannot enforce the timeout: the backstop kills",
			setup: func(_ *fakeEngine, j *executor.Job) {
				j.Command, j.Limits.Timeout = []string{"hang"}, time.Millisecond
			},
			created: 1,
			killed:  true,
			check: func(t *testing.T, res executor.Result) {
				if !res.TimedOut || res.ExitCode != 137 {
					t.Errorf("exit %d timed out %v, want 137 and timed out", res.ExitCode, res.TimedOut)
				}
			},
		},
		{
			name:    "the caller goes away",
			setup:   func(_ *fakeEngine, j *executor.Job) { j.Command = []string{"hang"} },
			cancel:  true,
			wantErr: context.Canceled,
			created: 1,
			killed:  true,
		},
		{
			name:    "the image is missing",
			setup:   func(_ *fakeEngine, j *executor.Job) { j.Image = "runhost/none:1" },
			wantErr: executor.ErrImageMissing,
		},
		{
			name: "create fails and the engine did nothing",
			setup: func(f *fakeEngine, _ *executor.Job) {
				f.fail = map[string]error{"create": errEngineDown}
			},
			wantErr: errEngineDown,
		},
		{
			name: "create fails after the engine acted",
			setup: func(f *fakeEngine, _ *executor.Job) {
				f.fail, f.createActs = map[string]error{"create": errEngineDown}, true
			},
			wantErr: errEngineDown,
			created: 1,
		},
		{
			name:    "attach fails",
			setup:   func(f *fakeEngine, _ *executor.Job) { f.fail = map[string]error{"attach": errEngineDown} },
			wantErr: errEngineDown,
			created: 1,
		},
		{
			name:    "start fails",
			setup:   func(f *fakeEngine, _ *executor.Job) { f.fail = map[string]error{"start": errEngineDown} },
			wantErr: errEngineDown,
			created: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the backstop waits its 5 s
			f := newFakeEngine(testImage)
			e := newTestExecutor(t, f)
			// Fill the init volume first: its helper container is not the
			// subject here.
			if err := e.init.ensure(context.Background(), f, nil); err != nil {
				t.Fatal(err)
			}
			job := testJob("r1", "exit 0")
			tt.setup(f, &job)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				f.running = make(chan string, 1)
				go func() {
					<-f.running
					cancel()
				}()
			}
			res, err := e.Run(ctx, job)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("run: %v, want %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, res)
			}
			if err := e.Close(); err != nil { // waits for removals in the background
				t.Fatal(err)
			}
			runs := f.byName("runhost-r1")
			if len(runs) != tt.created {
				t.Fatalf("%d containers created for the run, want %d", len(runs), tt.created)
			}
			if tt.created == 1 && (runs[0].kills > 0) != tt.killed {
				t.Errorf("killed %d times, want killed: %v", runs[0].kills, tt.killed)
			}
			f.checkNothingLeft(t)
		})
	}
}

// A removal the engine refuses (it restarts, say) is retried in the
// background until the container is gone.
func TestRunRetriesAFailedRemoval(t *testing.T) {
	tests := []struct {
		name    string
		command string
		cancel  bool
	}{
		{"after a run, in the background", "exit 0", false},
		{"after a cancelled run, before Run returns", "hang", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEngine(testImage)
			f.failRemovals = map[string]int{"runhost-r1": 2}
			e := newTestExecutor(t, f)
			job := testJob("r1", tt.command)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.running = make(chan string, 1)
			go func() {
				<-f.running
				if tt.cancel {
					cancel()
				}
			}()
			_, _ = e.Run(ctx, job)
			waitRemoved(t, f.byName("runhost-r1")[0])
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			f.checkNothingLeft(t)
			if left := f.failRemovals["runhost-r1"]; left != 0 {
				t.Errorf("%d failing removals not tried", left)
			}
		})
	}
}

// A session's container is removed when the session closes.
func TestSessionContainerIsRemovedAtClose(t *testing.T) {
	f := newFakeEngine(testImage)
	e := newTestExecutor(t, f)
	s, err := e.StartSession(context.Background(), testJob("s1", "hang"))
	if err != nil {
		t.Fatal(err)
	}
	sessions := f.byName("runhost-s1")
	if len(sessions) != 1 || sessions[0].host.NetworkMode != "none" || !sessions[0].host.ReadonlyRootfs {
		t.Fatalf("session containers %d, want one with the run's hardening", len(sessions))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	f.checkNothingLeft(t)
}
