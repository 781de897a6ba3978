package workspace

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// The per-session lock map holds only sessions being written to: it used
// to keep an entry for every session ever uploaded to, for the host's life.
func TestSessionLocksArePruned(t *testing.T) {
	s, _ := newStore(t)
	for i := range 50 {
		ref := shared(t, s, fmt.Sprintf("s%d", i))
		if _, err := s.Put(ref, "a.txt", strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ref, "a.txt", strings.NewReader("too large for the quota"+strings.Repeat("x", 2000))); err == nil {
			t.Fatal("an upload over the quota was accepted")
		}
	}
	if n := lockEntries(s); n != 0 {
		t.Errorf("%d lock entries after every upload ended, want 0", n)
	}
}

// Pruning keeps the lock a lock: an entry someone waits for is not dropped
// when its holder releases it, so a later caller queues behind the waiter
// instead of getting a fresh lock and writing at the same time.
func TestSessionLockStaysWhileWaitedFor(t *testing.T) {
	s, _ := newStore(t)
	ref := shared(t, s, "s1")

	release1 := s.lock(ref)
	held2 := make(chan func())
	go func() { held2 <- s.lock(ref) }()
	waitRefs(t, s, ref, 2, held2) // the second caller waits on the same entry

	release1()
	release2 := <-held2 // the second caller holds it now
	held3 := make(chan func())
	go func() { held3 <- s.lock(ref) }()
	waitRefs(t, s, ref, 2, held3) // a third caller queues on the same entry
	release2()
	(<-held3)()
	if n := lockEntries(s); n != 0 {
		t.Errorf("%d lock entries after every holder released, want 0", n)
	}
}

func lockEntries(s *Store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locks)
}

// waitRefs waits until ref's lock entry counts n holders and waiters,
// failing if the caller expected to wait gets the lock (held) instead.
func waitRefs(t *testing.T, s *Store, ref Ref, n int, held chan func()) {
	t.Helper()
	for {
		select {
		case release := <-held:
			release()
			t.Fatal("a caller got the lock while another held it")
		default:
		}
		s.mu.Lock()
		l := s.locks[ref.path]
		got := 0
		if l != nil {
			got = l.refs
		}
		s.mu.Unlock()
		if got == n {
			return
		}
		if got > n {
			t.Fatalf("lock entry counts %d, want %d", got, n)
		}
		runtime.Gosched()
	}
}
