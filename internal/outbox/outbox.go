// Package outbox carries a streaming run's messages to a client through a
// buffer of bounded size and one writer goroutine, so the run never waits
// on the network: it waits only for room in the buffer, which the writer
// frees as the client reads or, when a write fails (a client that stopped
// reading hits the write deadline), ends for good.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrClientGone means the client stopped reading or went away before its
// answer was written.
var ErrClientGone = errors.New("the client stopped reading its answer")

// ErrClosed is what Send returns after Close.
var ErrClosed = errors.New("outbox closed")

// Config says where messages go.
type Config struct {
	// MaxBytes bounds the bytes queued plus the one being written. A single
	// message larger than MaxBytes is still taken when nothing else waits.
	MaxBytes int
	// Write writes one message; it must return within the write deadline.
	Write func([]byte) error
	// Flush, when set, is called when the queue runs empty after a write.
	Flush func() error
	// OnFail, when set, is called once, from the writer goroutine, with the
	// first error of Write or Flush (wrapped in ErrClientGone).
	OnFail func(error)
}

// Outbox is a bounded queue with its writer goroutine.
type Outbox struct {
	cfg Config

	mu     sync.Mutex
	queue  [][]byte
	size   int           // bytes queued and being written
	closed bool          // Close was called: no more messages
	err    error         // the writer failed; nothing more is written
	freed  chan struct{} // closed (and replaced) whenever room is freed or the writer fails
	wake   chan struct{} // the writer's doorbell (capacity 1)
	done   chan struct{} // closed when the writer goroutine has ended
}

// New starts the writer goroutine; Close ends it.
func New(cfg Config) *Outbox {
	o := &Outbox{cfg: cfg, freed: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go o.run()
	return o
}

// Send queues b (which the outbox now owns). It waits while the buffer is
// full: until the writer frees room, the writer fails (ErrClientGone), or
// ctx ends.
func (o *Outbox) Send(ctx context.Context, b []byte) error {
	o.mu.Lock()
	for {
		switch {
		case o.err != nil:
			err := o.err
			o.mu.Unlock()
			return err
		case o.closed:
			o.mu.Unlock()
			return ErrClosed
		case o.size == 0 || o.size+len(b) <= o.cfg.MaxBytes:
			o.queue = append(o.queue, b)
			o.size += len(b)
			o.mu.Unlock()
			o.ring()
			return nil
		}
		freed := o.freed
		o.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
	}
}

// Buffered reports the bytes queued and being written.
func (o *Outbox) Buffered() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.size
}

// Close takes no more messages, waits until the writer has written what is
// queued or failed, and returns its error (nil when all was written).
func (o *Outbox) Close() error {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.ring()
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (o *Outbox) ring() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// run writes messages in order until Close, or until a write fails.
func (o *Outbox) run() {
	defer close(o.done)
	for {
		o.mu.Lock()
		for len(o.queue) == 0 && !o.closed {
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		if len(o.queue) == 0 {
			o.mu.Unlock()
			return // closed, and everything was written
		}
		b := o.queue[0]
		o.queue[0] = nil
		o.queue = o.queue[1:]
		last := len(o.queue) == 0
		o.mu.Unlock()

		err := o.cfg.Write(b)
		if err == nil && last && o.cfg.Flush != nil {
			err = o.cfg.Flush()
		}

		o.mu.Lock()
		o.size -= len(b)
		if err != nil {
			o.err = fmt.Errorf("%w: %w", ErrClientGone, err)
			o.queue, o.size = nil, 0
		}
		close(o.freed)
		o.freed = make(chan struct{})
		failed := o.err
		o.mu.Unlock()
		if err != nil {
			if o.cfg.OnFail != nil {
				o.cfg.OnFail(failed)
			}
			return
		}
	}
}
