// Package sessions keeps stateful sessions: a container per session that
// serves one run at a time, with an idle TTL, a maximum lifetime and caps
// per API key and in total. Sessions belong to the key that made them.
package sessions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
)

// Errors the API maps to statuses.
var (
	ErrNotFound = errors.New("no such session")
	ErrBusy     = errors.New("session busy") // a run is going: 409
	ErrTooMany  = errors.New("too many sessions")
)

// Config bounds sessions.
type Config struct {
	IdleTTL     time.Duration // default idle time before a session is removed
	MaxLifetime time.Duration // no session lives longer
	MaxPerKey   int
	MaxTotal    int
}

// Info describes a session.
type Info struct {
	ID        string    `json:"id"`
	Runtime   string    `json:"runtime"`
	Version   string    `json:"version"`
	Mode      string    `json:"mode"` // "plain" or "interpreter"
	Image     string    `json:"image"`
	Workspace string    `json:"workspace,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used"`
	ExpiresAt time.Time `json:"expires_at"` // when it goes if it stays idle
	IdleTTLS  int64     `json:"idle_ttl_s"`
	Runs      int       `json:"runs"`
	Busy      bool      `json:"busy"`
}

type session struct {
	id      string
	key     string
	sess    executor.Session
	base    runner.SessionBase
	created time.Time
	ttl     time.Duration

	mu       sync.Mutex
	busy     bool
	lastUsed time.Time
	runs     int
}

// Manager holds the sessions.
type Manager struct {
	cfg    Config
	runner *runner.Runner
	log    hclog.Logger

	mu       sync.Mutex
	sessions map[string]*session
	stop     chan struct{}
	stopped  sync.WaitGroup
}

// New returns a manager and starts its expiry loop.
func New(cfg Config, run *runner.Runner, log hclog.Logger) *Manager {
	m := &Manager{cfg: cfg, runner: run, log: log, sessions: map[string]*session{}, stop: make(chan struct{})}
	m.stopped.Add(1)
	go m.expireLoop()
	return m
}

// Create starts a session for key. ttl 0 means the default idle TTL; one
// above the maximum lifetime is refused, as limits above a maximum are.
func (m *Manager) Create(ctx context.Context, key string, spec runner.SessionSpec, ttl time.Duration) (Info, error) {
	if ttl > m.cfg.MaxLifetime {
		return Info{}, &policy.LimitError{Field: "ttl_s", Msg: fmt.Sprintf("%d is above the host's maximum session lifetime of %d (RUNHOST_SESSION_MAX_LIFETIME_S)", int64(ttl.Seconds()), int64(m.cfg.MaxLifetime.Seconds()))}
	}
	if ttl <= 0 {
		ttl = min(m.cfg.IdleTTL, m.cfg.MaxLifetime)
	}
	m.mu.Lock()
	if len(m.sessions) >= m.cfg.MaxTotal {
		m.mu.Unlock()
		return Info{}, fmt.Errorf("%w: the host holds its maximum of %d", ErrTooMany, m.cfg.MaxTotal)
	}
	mine := 0
	for _, s := range m.sessions {
		if s.key == key {
			mine++
		}
	}
	if mine >= m.cfg.MaxPerKey {
		m.mu.Unlock()
		return Info{}, fmt.Errorf("%w: key %s holds its maximum of %d; delete one first", ErrTooMany, key, m.cfg.MaxPerKey)
	}
	// Reserve the place while the container starts.
	id := newID()
	placeholder := &session{id: id, key: key, busy: true}
	m.sessions[id] = placeholder
	m.mu.Unlock()

	spec.Lifetime = m.cfg.MaxLifetime
	sess, base, err := m.runner.StartSession(ctx, spec)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.sessions, id)
		return Info{}, err
	}
	now := time.Now()
	s := &session{id: id, key: key, sess: sess, base: base, created: now, lastUsed: now, ttl: ttl}
	m.sessions[id] = s
	m.log.Info("session started", "session", id, "key", key, "runtime", base.Runtime, "version", base.Version.Version)
	return s.info(), nil
}

// Get describes key's session id.
func (m *Manager) Get(key, id string) (Info, error) {
	s, err := m.lookup(key, id)
	if err != nil {
		return Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info(), nil
}

// List describes key's sessions, oldest first.
func (m *Manager) List(key string) []Info {
	m.mu.Lock()
	var mine []*session
	for _, s := range m.sessions {
		if s.key == key && s.sess != nil {
			mine = append(mine, s)
		}
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(mine))
	for _, s := range mine {
		s.mu.Lock()
		out = append(out, s.info())
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Info) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out
}

// Delete ends key's session id.
func (m *Manager) Delete(key, id string) error {
	s, err := m.lookup(key, id)
	if err != nil {
		return err
	}
	m.end(s, "deleted")
	return nil
}

// Run runs req in key's session id. A second run while one is going is
// refused with ErrBusy rather than queued: the caller decides.
func (m *Manager) Run(ctx context.Context, key, id string, req runner.Request) (runner.Result, error) {
	s, err := m.lookup(key, id)
	if err != nil {
		return runner.Result{}, err
	}
	s.mu.Lock()
	if s.busy {
		s.mu.Unlock()
		return runner.Result{}, fmt.Errorf("%w: session %s is running another program; one run at a time", ErrBusy, id)
	}
	s.busy = true
	s.mu.Unlock()

	res, err := m.runner.RunInSession(ctx, s.sess, &s.base, req)

	s.mu.Lock()
	s.busy, s.lastUsed = false, time.Now()
	s.runs++
	s.mu.Unlock()
	select {
	case <-s.sess.Done():
		m.end(s, "its container ended")
	default:
	}
	return res, err
}

func (m *Manager) lookup(key, id string) (*session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || s.key != key || s.sess == nil {
		return nil, fmt.Errorf("%w %q", ErrNotFound, id)
	}
	return s, nil
}

func (m *Manager) end(s *session, why string) {
	m.mu.Lock()
	_, ok := m.sessions[s.id]
	delete(m.sessions, s.id)
	m.mu.Unlock()
	if ok && s.sess != nil {
		_ = s.sess.Close()
		m.log.Info("session ended", "session", s.id, "reason", why, "runs", s.runs)
	}
}

// expireLoop removes idle and too-old sessions.
func (m *Manager) expireLoop() {
	defer m.stopped.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		var expired []*session
		m.mu.Lock()
		for _, s := range m.sessions {
			if s.sess == nil {
				continue
			}
			s.mu.Lock()
			idle := !s.busy && now.Sub(s.lastUsed) > s.ttl
			old := now.Sub(s.created) > m.cfg.MaxLifetime
			s.mu.Unlock()
			dead := false
			select {
			case <-s.sess.Done(): // its container went away between runs
				dead = true
			default:
			}
			if idle || old || dead {
				expired = append(expired, s)
			}
		}
		m.mu.Unlock()
		for _, s := range expired {
			m.end(s, "expired")
		}
	}
}

// Close ends every session.
func (m *Manager) Close() {
	close(m.stop)
	m.stopped.Wait()
	m.mu.Lock()
	all := make([]*session, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		m.end(s, "host shutting down")
	}
}

// info needs s.mu held (or s not yet shared).
func (s *session) info() Info {
	ws := ""
	if s.base.Workspace != nil {
		ws = s.base.Workspace.String()
	}
	mode := runner.ModePlain
	if s.base.Interpreter {
		mode = runner.ModeInterpreter
	}
	return Info{
		ID:        s.id,
		Mode:      mode,
		Runtime:   s.base.Runtime,
		Version:   s.base.Version.Version,
		Image:     s.base.Job.Image,
		Workspace: ws,
		CreatedAt: s.created,
		LastUsed:  s.lastUsed,
		ExpiresAt: s.lastUsed.Add(s.ttl),
		IdleTTLS:  int64(s.ttl.Seconds()),
		Runs:      s.runs,
		Busy:      s.busy,
	}
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "s_" + hex.EncodeToString(b[:])
}
