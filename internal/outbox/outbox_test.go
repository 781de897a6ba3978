package outbox

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
)

// gate is a writer the test controls: each write waits for a token, and
// the bytes written are recorded.
type gate struct {
	mu      sync.Mutex
	tokens  chan error
	written bytes.Buffer
	started chan struct{} // a write is waiting for its token
}

func newGate() *gate { return &gate{tokens: make(chan error), started: make(chan struct{}, 100)} }

func (g *gate) write(b []byte) error {
	g.started <- struct{}{}
	if err := <-g.tokens; err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.written.Write(b)
	return nil
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.written.String()
}

func TestWritesInOrderAndCloseWaits(t *testing.T) {
	var buf bytes.Buffer
	flushes := 0
	o := New(Config{MaxBytes: 1 << 10, Write: func(b []byte) error { buf.Write(b); return nil }, Flush: func() error { flushes++; return nil }})
	for _, s := range []string{"a", "b", "c"} {
		if err := o.Send(context.Background(), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "abc" || flushes == 0 {
		t.Errorf("written %q with %d flushes, want abc and at least one flush", buf.String(), flushes)
	}
	if err := o.Send(context.Background(), []byte("d")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
}

// The buffer never holds more than MaxBytes: a sender waits for room, and
// gets it when the writer has written.
func TestSendWaitsForRoomAndTheBoundHolds(t *testing.T) {
	g := newGate()
	o := New(Config{MaxBytes: 10, Write: g.write})
	ctx := context.Background()
	if err := o.Send(ctx, []byte("0123456789")); err != nil { // fills the buffer
		t.Fatal(err)
	}
	<-g.started // the writer holds it, still counted
	sent := make(chan error, 1)
	go func() { sent <- o.Send(ctx, []byte("x")) }()
	select {
	case err := <-sent:
		t.Fatalf("Send into a full buffer returned %v before any room was freed", err)
	default:
	}
	if n := o.Buffered(); n != 10 {
		t.Errorf("Buffered = %d, want 10", n)
	}
	g.tokens <- nil // the first write completes: room for x
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	<-g.started
	g.tokens <- nil
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if g.String() != "0123456789x" {
		t.Errorf("written %q", g.String())
	}
}

// A message larger than the whole buffer still goes when nothing waits,
// so a big chunk cannot wedge the stream.
func TestOversizeMessageGoesAlone(t *testing.T) {
	var buf bytes.Buffer
	o := New(Config{MaxBytes: 4, Write: func(b []byte) error { buf.Write(b); return nil }})
	if err := o.Send(context.Background(), []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil || buf.String() != "0123456789" {
		t.Fatalf("written %q, err %v", buf.String(), err)
	}
}

// A failed write ends the outbox: OnFail is called once with
// ErrClientGone, waiting and later senders are released with it, and the
// queue is dropped.
func TestWriteFailureReleasesSenders(t *testing.T) {
	g := newGate()
	failed := make(chan error, 2)
	o := New(Config{MaxBytes: 4, Write: g.write, OnFail: func(err error) { failed <- err }})
	ctx := context.Background()
	if err := o.Send(ctx, []byte("abcd")); err != nil {
		t.Fatal(err)
	}
	<-g.started
	sent := make(chan error, 1)
	go func() { sent <- o.Send(ctx, []byte("efgh")) }()
	timeout := errors.New("i/o timeout")
	g.tokens <- timeout
	if err := <-failed; !errors.Is(err, ErrClientGone) || !errors.Is(err, timeout) {
		t.Errorf("OnFail got %v, want ErrClientGone wrapping the write error", err)
	}
	if err := <-sent; !errors.Is(err, ErrClientGone) {
		t.Errorf("waiting Send: %v, want ErrClientGone", err)
	}
	if err := o.Send(ctx, []byte("x")); !errors.Is(err, ErrClientGone) {
		t.Errorf("later Send: %v, want ErrClientGone", err)
	}
	if err := o.Close(); !errors.Is(err, ErrClientGone) {
		t.Errorf("Close: %v, want ErrClientGone", err)
	}
	if n := o.Buffered(); n != 0 {
		t.Errorf("Buffered = %d after failure, want 0", n)
	}
	if len(failed) != 0 {
		t.Error("OnFail was called more than once")
	}
}

// A sender waiting for room gives up when its context ends.
func TestSendHonoursContext(t *testing.T) {
	g := newGate()
	o := New(Config{MaxBytes: 1, Write: g.write})
	if err := o.Send(context.Background(), []byte("a")); err != nil {
		t.Fatal(err)
	}
	<-g.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.Send(ctx, []byte("b")); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context into a full buffer: %v", err)
	}
	g.tokens <- nil
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
}
