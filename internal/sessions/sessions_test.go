package sessions_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/app/apptest"
	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/fakeexec"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/sessions"
	"github.com/runhost/runhost/internal/testenv"
	"github.com/runhost/runhost/shared"
)

// setup makes a manager with cfg over a host's runner (the real plugins
// and policy) and its fake executor.
func setup(t *testing.T, cfg sessions.Config) (*sessions.Manager, *fakeexec.Executor) {
	t.Helper()
	h := apptest.Start(t)
	if cfg.IdleTTL == 0 {
		cfg.IdleTTL = time.Hour
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = 2 * time.Hour
	}
	m := sessions.New(cfg, h.Runner, hclog.NewNullLogger())
	t.Cleanup(m.Close)
	return m, h.Exec
}

var alice = auth.Identity{Name: "alice"}

func spec() runner.SessionSpec {
	return runner.SessionSpec{Caller: alice, Runtime: "python"}
}

func run(code string) runner.Request {
	return runner.Request{Caller: alice, RunRequest: shared.RunRequest{Code: code}}
}

func TestLifecycle(t *testing.T) {
	m, exec := setup(t, sessions.Config{MaxPerKey: 4, MaxTotal: 4})
	ctx := context.Background()
	info, err := m.Create(ctx, "alice", spec(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.Runtime != "python" || info.Version == "" || info.Image == "" || info.IdleTTLS != 3600 || info.Busy || info.Runs != 0 {
		t.Errorf("info %+v", info)
	}
	started := exec.Sessions()
	if len(started) != 1 {
		t.Fatalf("%d sessions started on the engine", len(started))
	}
	fake := started[0]
	if job := fake.Job(); job.Labels["runhost.session"] != "true" || job.Limits.Timeout != 2*time.Hour || job.Image != info.Image {
		t.Errorf("the session's container: %+v", job)
	}

	// Runs one after another; what a run leaves stays for the next.
	exec.OnRun(fakeexec.Exit(0, "ran\n", ""))
	for _, f := range []string{"a.py", "b.py"} {
		req := run("")
		req.Files = []shared.File{{Path: f, Content: []byte("print(1)")}}
		res, err := m.Run(ctx, "alice", info.ID, req)
		if err != nil || string(res.Stdout) != "ran\n" || res.Runtime != "python" {
			t.Fatalf("run %s: %+v %v", f, res, err)
		}
	}
	if files := fake.Files(); len(files) != 2 {
		t.Errorf("the session holds %d files, want both runs'", len(files))
	}
	got, err := m.Get("alice", info.ID)
	if err != nil || got.Runs != 2 || got.Busy || !got.LastUsed.After(info.LastUsed) {
		t.Errorf("after two runs: %+v %v", got, err)
	}
	if list := m.List("alice"); len(list) != 1 || list[0].ID != info.ID {
		t.Errorf("list %+v", list)
	}

	if err := m.Delete("alice", info.ID); err != nil {
		t.Fatal(err)
	}
	if !fake.Closed() {
		t.Error("delete left the container")
	}
	if _, err := m.Get("alice", info.ID); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := m.Run(ctx, "alice", info.ID, run("1")); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("run after delete: %v", err)
	}
	if err := m.Delete("alice", info.ID); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

// TestAnotherKeysSession: another key's session id is exactly an id that
// does not exist, for every operation.
func TestAnotherKeysSession(t *testing.T) {
	m, exec := setup(t, sessions.Config{MaxPerKey: 4, MaxTotal: 4})
	ctx := context.Background()
	info, err := m.Create(ctx, "alice", spec(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{info.ID, "s_000000000000000000000000"} {
		if _, err := m.Get("bob", id); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("bob gets %s: %v", id, err)
		}
		if _, err := m.Run(ctx, "bob", id, run("1")); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("bob runs in %s: %v", id, err)
		}
		if err := m.Delete("bob", id); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("bob deletes %s: %v", id, err)
		}
	}
	if list := m.List("bob"); len(list) != 0 {
		t.Errorf("bob lists %+v", list)
	}
	if exec.Live() != 1 || len(exec.Sessions()[0].Runs()) != 0 {
		t.Error("bob's calls touched alice's session")
	}
}

func TestCaps(t *testing.T) {
	m, exec := setup(t, sessions.Config{MaxPerKey: 2, MaxTotal: 3})
	ctx := context.Background()
	var ids []string
	for range 2 {
		info, err := m.Create(ctx, "alice", spec(), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	if _, err := m.Create(ctx, "alice", spec(), 0); !errors.Is(err, sessions.ErrTooMany) {
		t.Errorf("alice's third session: %v, want ErrTooMany (per key)", err)
	}
	if _, err := m.Create(ctx, "bob", spec(), 0); err != nil {
		t.Errorf("bob's first session: %v", err)
	}
	if _, err := m.Create(ctx, "bob", spec(), 0); !errors.Is(err, sessions.ErrTooMany) {
		t.Errorf("bob's second session: %v, want ErrTooMany (in total)", err)
	}
	if err := m.Delete("alice", ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, "bob", spec(), 0); err != nil {
		t.Errorf("after a delete: %v", err)
	}
	if n := exec.Live(); n != 3 {
		t.Errorf("%d containers live, want 3", n)
	}
}

// TestFailedStartFreesItsPlace: a session whose container does not start
// holds no place.
func TestFailedStartFreesItsPlace(t *testing.T) {
	m, exec := setup(t, sessions.Config{MaxPerKey: 1, MaxTotal: 1})
	ctx := context.Background()
	exec.OnStartSession(func(context.Context, executor.Job) error { return executor.ErrEngineUnavailable })
	for range 3 {
		if _, err := m.Create(ctx, "alice", spec(), 0); !errors.Is(err, executor.ErrEngineUnavailable) {
			t.Fatalf("create: %v", err)
		}
	}
	bad := spec()
	bad.Version = "2.7"
	if _, err := m.Create(ctx, "alice", bad, 0); !errors.Is(err, runner.ErrUnknownVersion) {
		t.Fatalf("create with an unknown version: %v", err)
	}
	exec.OnStartSession(nil)
	if _, err := m.Create(ctx, "alice", spec(), 0); err != nil {
		t.Errorf("after failed starts: %v", err)
	}
}

func TestTTL(t *testing.T) {
	m, _ := setup(t, sessions.Config{MaxPerKey: 4, MaxTotal: 4, IdleTTL: time.Minute, MaxLifetime: time.Hour})
	ctx := context.Background()
	var le *policy.LimitError
	if _, err := m.Create(ctx, "alice", spec(), 2*time.Hour); !errors.As(err, &le) || le.Field != "ttl_s" {
		t.Errorf("ttl above the lifetime: %v", err)
	}
	info, err := m.Create(ctx, "alice", spec(), 0)
	if err != nil || info.IdleTTLS != 60 {
		t.Errorf("default ttl: %+v %v", info, err)
	}
	info, err = m.Create(ctx, "alice", spec(), time.Hour)
	if err != nil || info.IdleTTLS != 3600 || !info.ExpiresAt.Equal(info.LastUsed.Add(time.Hour)) {
		t.Errorf("ttl of an hour: %+v %v", info, err)
	}
}

// TestIdleExpiry: a session unused for its TTL goes, container and all.
func TestIdleExpiry(t *testing.T) {
	m, exec := setup(t, sessions.Config{MaxPerKey: 4, MaxTotal: 4})
	info, err := m.Create(context.Background(), "alice", spec(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the idle session is removed", func() bool {
		_, err := m.Get("alice", info.ID)
		return errors.Is(err, sessions.ErrNotFound)
	})
	if !exec.Sessions()[0].Closed() {
		t.Error("the expired session's container was not removed")
	}
}

// TestBusy: one run at a time; the caller hanging up ends its run, not
// the session.
func TestBusy(t *testing.T) {
	m, exec := setup(t, sessions.Config{MaxPerKey: 4, MaxTotal: 4})
	info, err := m.Create(context.Background(), "alice", spec(), 0)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan executor.Job, 1)
	exec.OnRun(fakeexec.Hang(started))
	ctx, hangUp := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(ctx, "alice", info.ID, run("while True: pass"))
		done <- err
	}()
	<-started
	if got, _ := m.Get("alice", info.ID); !got.Busy {
		t.Error("a running session is not busy")
	}
	exec.OnRun(fakeexec.Exit(0, "second\n", ""))
	if _, err := m.Run(context.Background(), "alice", info.ID, run("1")); !errors.Is(err, sessions.ErrBusy) {
		t.Errorf("a second run: %v, want ErrBusy", err)
	}
	hangUp()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the hung-up run: %v", err)
	}
	if exec.Sessions()[0].Ended() {
		t.Fatal("hanging up ended the session")
	}
	res, err := m.Run(context.Background(), "alice", info.ID, run("1"))
	if err != nil || string(res.Stdout) != "second\n" {
		t.Errorf("the next run: %+v %v", res, err)
	}
}

// TestContainerGone: a session whose container went away ends: its run
// says so, and later it does not exist.
func TestContainerGone(t *testing.T) {
	m, exec := setup(t, sessions.Config{MaxPerKey: 4, MaxTotal: 4})
	ctx := context.Background()
	info, err := m.Create(ctx, "alice", spec(), 0)
	if err != nil {
		t.Fatal(err)
	}
	exec.Sessions()[0].Die()
	if _, err := m.Run(ctx, "alice", info.ID, run("1")); !errors.Is(err, executor.ErrSessionGone) {
		t.Errorf("run in a dead session: %v", err)
	}
	if _, err := m.Get("alice", info.ID); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("get a dead session: %v", err)
	}

	// Between runs, the expiry loop notices.
	info, err = m.Create(ctx, "alice", spec(), 0)
	if err != nil {
		t.Fatal(err)
	}
	exec.Sessions()[1].Die()
	testenv.Eventually(t, 10*time.Second, "the dead session is removed", func() bool {
		_, err := m.Get("alice", info.ID)
		return errors.Is(err, sessions.ErrNotFound)
	})
}

// TestRunRefusals: what a session decides at its start cannot change per
// run.
func TestRunRefusals(t *testing.T) {
	m, exec := setup(t, sessions.Config{MaxPerKey: 4, MaxTotal: 4})
	ctx := context.Background()
	info, err := m.Create(ctx, "alice", spec(), 0)
	if err != nil {
		t.Fatal(err)
	}
	other := "3.13"
	if info.Version == other {
		other = "3.11"
	}
	with := func(f func(*runner.Request)) runner.Request {
		r := run("1")
		f(&r)
		return r
	}
	cases := map[string]runner.Request{
		"memory":        with(func(r *runner.Request) { r.Limits.MemoryBytes = 64 << 20 }),
		"cpus":          with(func(r *runner.Request) { r.Limits.CPUs = 1 }),
		"workspace":     with(func(r *runner.Request) { r.Workspace = "proj" }),
		"context_path":  with(func(r *runner.Request) { r.ContextPath = "proj" }),
		"packages":      with(func(r *runner.Request) { r.Packages = []string{"x"} }),
		"image":         with(func(r *runner.Request) { r.Image = "x" }),
		"dockerfile":    with(func(r *runner.Request) { r.Dockerfile = "FROM x" }),
		"build_args":    with(func(r *runner.Request) { r.BuildArgs = map[string]string{"A": "b"} }),
		"other version": with(func(r *runner.Request) { r.Version = other }),
		"no program":    with(func(r *runner.Request) { r.Code = "" }),
	}
	for name, req := range cases {
		if _, err := m.Run(ctx, "alice", info.ID, req); !errors.Is(err, shared.ErrInvalidRequest) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	if n := len(exec.Sessions()[0].Runs()); n != 0 {
		t.Errorf("%d refused runs reached the session", n)
	}
	if _, err := m.Run(ctx, "alice", info.ID, with(func(r *runner.Request) { r.Version = info.Version })); err != nil {
		t.Errorf("the session's own version: %v", err)
	}
}

// TestCloseEndsEverySession: the host shutting down removes every
// session's container.
func TestCloseEndsEverySession(t *testing.T) {
	h := apptest.Start(t)
	m := sessions.New(sessions.Config{IdleTTL: time.Hour, MaxLifetime: time.Hour, MaxPerKey: 4, MaxTotal: 4}, h.Runner, hclog.NewNullLogger())
	for _, key := range []string{"alice", "bob"} {
		if _, err := m.Create(context.Background(), key, spec(), 0); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	if n := h.Exec.Live(); n != 0 {
		t.Errorf("%d session containers left after Close", n)
	}
}
