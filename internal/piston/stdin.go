package piston

import (
	"fmt"
	"sync"
)

// stdinQueue holds the stdin messages of a /connect client until the
// program takes them, bounded in bytes and in messages. The reader never
// waits on it (so signals are read while the program ignores its stdin):
// a message over a bound is refused and the connection closed.
type stdinQueue struct {
	maxBytes int64
	maxMsgs  int

	mu     sync.Mutex
	msgs   [][]byte
	bytes  int64 // queued, plus the message being written to the program
	count  int   // the same, in messages
	closed bool
	wake   chan struct{} // the feeder's doorbell (capacity 1)
}

func newStdinQueue(maxBytes int64, maxMsgs int) *stdinQueue {
	return &stdinQueue{maxBytes: maxBytes, maxMsgs: maxMsgs, wake: make(chan struct{}, 1)}
}

// push queues b, or refuses it when it would pass a bound.
func (q *stdinQueue) push(b []byte) error {
	q.mu.Lock()
	switch {
	case q.bytes+int64(len(b)) > q.maxBytes:
		q.mu.Unlock()
		return fmt.Errorf("stdin: more than %d bytes would be waiting for the program (RUNHOST_MAX_STDIN_BYTES); send stdin as the program reads it", q.maxBytes)
	case q.count+1 > q.maxMsgs:
		q.mu.Unlock()
		return fmt.Errorf("stdin: more than %d messages would be waiting for the program; send stdin as the program reads it", q.maxMsgs)
	}
	q.msgs = append(q.msgs, b)
	q.bytes += int64(len(b))
	q.count++
	q.mu.Unlock()
	q.ring()
	return nil
}

// next waits for the oldest message; false once the queue is closed and
// empty. The message stays counted until done.
func (q *stdinQueue) next() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.msgs) == 0 && !q.closed {
		q.mu.Unlock()
		<-q.wake
		q.mu.Lock()
	}
	if len(q.msgs) == 0 {
		return nil, false
	}
	b := q.msgs[0]
	q.msgs[0] = nil
	q.msgs = q.msgs[1:]
	return b, true
}

// done releases a message next returned, once the program has it (or it
// was dropped).
func (q *stdinQueue) done(n int) {
	q.mu.Lock()
	q.bytes -= int64(n)
	q.count--
	q.mu.Unlock()
}

// held reports the bytes and messages counted now.
func (q *stdinQueue) held() (int64, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes, q.count
}

// close ends the queue: next returns what is left, then false.
func (q *stdinQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.ring()
}

func (q *stdinQueue) ring() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
