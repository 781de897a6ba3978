package docker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// removalEngine is an engine whose container removals fail the way a
// restarting engine's do; every other call is unexpected (nil engine).
type removalEngine struct {
	engine
	hang bool // after the first failure, removals hang until cancelled

	mu       sync.Mutex
	calls    int
	inFlight int
	entered  chan struct{} // a retry is in an engine call
	removed  chan struct{} // a retry removed the container
}

func (f *removalEngine) ContainerRemove(ctx context.Context, id string, _ container.RemoveOptions) error {
	f.mu.Lock()
	f.calls++
	first := f.calls == 1
	f.inFlight++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	switch {
	case first:
		return errors.New("Cannot connect to the Docker daemon")
	case f.hang:
		f.entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	default:
		f.removed <- struct{}{}
		return nil
	}
}

func (f *removalEngine) Close() error { return nil }

// Close stops the removals being retried and waits for them: it used to
// return with their goroutines still running (and calling the engine)
// for as long as the process lived.
func TestCloseStopsRemovalRetries(t *testing.T) {
	tests := []struct {
		name  string
		hang  bool          // Close comes while a retry waits for the engine
		delay time.Duration // before the first retry
	}{
		{name: "waiting between attempts", delay: time.Hour},
		{name: "in an engine call that hangs", hang: true, delay: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &removalEngine{hang: tt.hang, entered: make(chan struct{}, 1)}
			e := newExecutor(f, Config{})
			e.retryDelay = tt.delay
			e.remove(context.Background(), "c1")
			if tt.hang {
				<-f.entered
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			inFlight := f.inFlight
			f.mu.Unlock()
			e.retryMu.Lock()
			retrying := len(e.retrying)
			e.retryMu.Unlock()
			if inFlight != 0 || retrying != 0 {
				t.Errorf("after Close: %d engine calls in flight, %d removals retrying; want none", inFlight, retrying)
			}

			// A removal that fails after Close is left for the sweep.
			f.mu.Lock()
			f.calls = 0
			f.mu.Unlock()
			e.remove(context.Background(), "c2")
			e.retryMu.Lock()
			retrying = len(e.retrying)
			e.retryMu.Unlock()
			if retrying != 0 {
				t.Errorf("a removal was retried after Close")
			}
		})
	}
}

// Until Close, a failed removal is retried until it works.
func TestRemovalIsRetriedUntilItWorks(t *testing.T) {
	f := &removalEngine{removed: make(chan struct{}, 1)}
	e := newExecutor(f, Config{})
	e.retryDelay = time.Millisecond
	e.remove(context.Background(), "c1")
	<-f.removed
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if f.calls != 2 {
		t.Errorf("%d removal calls, want the failed one and the retry", f.calls)
	}
}
