// Package kerneltest runs a kernel driver (protocol runhost-kernel/1) as a
// real process for tests, the way runhost-init will: locally with the
// protocol's file descriptors (os/exec ExtraFiles), or inside a runtime image
// with `docker run -i` through kernelshim, which does the same inside the
// container and relays the pipes over the container's stdin and stdout.
//
// Tests that need Docker check for it themselves (internal/testenv) before
// calling StartDocker.
package kerneltest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runhost/runhost/shared/kernel"
)

// Hang is how long a test waits for the driver before it fails: a guard
// against a hung test, never a measure of speed.
const Hang = 3 * time.Minute

// MaxMessage bounds one event in tests.
const MaxMessage = 1 << 30

// Cell is what one cell produced.
type Cell struct {
	ID      int64
	Stdout  string
	Stderr  string
	Results []Result
	Error   *kernel.CellError
}

// Result is one rich output.
type Result struct {
	Data     map[string]json.RawMessage
	Metadata map[string]json.RawMessage
}

// Text is the result's value for mime as a string ("" when it has none or
// the value is not a JSON string).
func (r Result) Text(mime string) string {
	var s string
	if raw, ok := r.Data[mime]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

// Texts lists the text/plain of every result.
func (c Cell) Texts() []string {
	var out []string
	for _, r := range c.Results {
		out = append(out, r.Text("text/plain"))
	}
	return out
}

// Exit is how the driver process ended.
type Exit struct {
	Code   int    `json:"code"`
	Signal string `json:"signal"`
}

// transport is what a Driver talks through: local pipes or the shim.
type transport interface {
	send(body []byte) error
	interrupt() error
	closeRequests() error
	kill()
}

// Driver is a running kernel driver.
type Driver struct {
	t     testing.TB
	tr    transport
	ready kernel.Event
	next  int64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	items   []item        // what arrived and nobody took yet
	exited  *Exit
	failure error // the stream broke
	stray   []string
	running int64         // the cell awaiting its done, 0 for none
	again   chan struct{} // closed to stop repeating an interrupt
}

type item struct {
	stream kernel.Stream
	data   []byte
	event  kernel.Event
}

func newDriver(t testing.TB, tr transport) *Driver {
	return &Driver{t: t, tr: tr, changed: make(chan struct{})}
}

// deliver is called by the transport's reader for each piece, in order.
func (d *Driver) deliver(o kernel.Output) error {
	it := item{stream: o.Stream, data: o.Data}
	if o.Stream == kernel.Events {
		if err := json.Unmarshal(o.Data, &it.event); err != nil {
			return fmt.Errorf("the driver sent a message that is not JSON: %w: %.200q", err, o.Data)
		}
	}
	d.mu.Lock()
	d.items = append(d.items, it)
	d.notifyLocked()
	d.mu.Unlock()
	return nil
}

func (d *Driver) finish(exit *Exit, err error) {
	d.mu.Lock()
	d.exited = exit
	if err != nil && d.failure == nil {
		d.failure = err
	}
	d.stopInterruptLocked()
	d.notifyLocked()
	d.mu.Unlock()
}

func (d *Driver) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// take waits for the next item; ok is false once the driver ended and
// nothing is left. waiting says what was waited for, in a hang's failure.
func (d *Driver) take(waiting func() string) (item, bool) {
	deadline := time.After(Hang)
	for {
		d.mu.Lock()
		if len(d.items) > 0 {
			it := d.items[0]
			d.items = d.items[1:]
			d.mu.Unlock()
			return it, true
		}
		if d.exited != nil || d.failure != nil {
			d.mu.Unlock()
			return item{}, false
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			d.t.Fatalf("the driver sent nothing for %s, waiting for %s", Hang, waiting())
		}
	}
}

func (d *Driver) awaitReady() {
	d.t.Helper()
	for {
		it, ok := d.take(func() string { return "its ready message" })
		if !ok {
			d.t.Fatalf("the driver ended before it was ready: %s", d.describeEnd())
		}
		switch {
		case it.stream == kernel.Events && it.event.Type == kernel.TypeReady:
			d.ready = it.event
			return
		case it.stream == kernel.Events:
			d.t.Fatalf("the driver's first message is %q, want ready", it.data)
		default:
			d.t.Logf("driver output before ready (fd %d): %s", it.stream, it.data)
		}
	}
}

func (d *Driver) describeEnd() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.failure != nil:
		return d.failure.Error()
	case d.exited != nil:
		return fmt.Sprintf("exit code %d, signal %q", d.exited.Code, d.exited.Signal)
	}
	return "running"
}

// Ready is the driver's ready message.
func (d *Driver) Ready() kernel.Event { return d.ready }

// Pending is a cell sent and not yet done.
type Pending struct {
	d    *Driver
	cell Cell
	done bool
}

// Start sends code as the next cell.
func (d *Driver) Start(code string) *Pending {
	d.t.Helper()
	d.next++
	body, err := json.Marshal(kernel.Request{ID: d.next, Code: code})
	if err != nil {
		d.t.Fatal(err)
	}
	d.mu.Lock()
	d.running = d.next
	d.mu.Unlock()
	if err := d.tr.send(body); err != nil {
		d.t.Fatalf("send cell %d: %v (%s)", d.next, err, d.describeEnd())
	}
	return &Pending{d: d, cell: Cell{ID: d.next}}
}

// step takes one item into the cell; false when the driver ended.
func (p *Pending) step() bool {
	p.d.t.Helper()
	it, ok := p.d.take(func() string {
		return fmt.Sprintf("cell %d (so far stdout %.500q, stderr %.500q, %d results)", p.cell.ID, p.cell.Stdout, p.cell.Stderr, len(p.cell.Results))
	})
	if !ok {
		return false
	}
	switch it.stream {
	case kernel.Stdout:
		p.cell.Stdout += string(it.data)
	case kernel.Stderr:
		p.cell.Stderr += string(it.data)
	case kernel.Events:
		ev := it.event
		if ev.ID != p.cell.ID || p.done {
			p.d.mu.Lock()
			p.d.stray = append(p.d.stray, string(it.data))
			p.d.mu.Unlock()
			p.d.t.Errorf("cell %d: unexpected message %.300s", p.cell.ID, it.data)
			return true
		}
		switch ev.Type {
		case kernel.TypeResult:
			if _, ok := ev.Data["text/plain"]; !ok {
				p.d.t.Errorf("cell %d: a result without text/plain: %.300s", p.cell.ID, it.data)
			}
			p.cell.Results = append(p.cell.Results, Result{Data: ev.Data, Metadata: ev.Metadata})
		case kernel.TypeDone:
			p.cell.Error = ev.Error
			p.done = true
			p.d.mu.Lock()
			p.d.running = 0
			p.d.stopInterruptLocked()
			p.d.mu.Unlock()
		default:
			p.d.t.Errorf("cell %d: a message of type %q", p.cell.ID, ev.Type)
		}
	}
	return true
}

// WaitOutput waits until the cell's stdout contains s (the cell is running
// and got that far).
func (p *Pending) WaitOutput(s string) {
	p.d.t.Helper()
	for !strings.Contains(p.cell.Stdout, s) {
		if p.done {
			p.d.t.Fatalf("cell %d ended before it printed %q: %+v", p.cell.ID, s, p.cell)
		}
		if !p.step() {
			p.d.t.Fatalf("the driver ended before cell %d printed %q: %s", p.cell.ID, s, p.d.describeEnd())
		}
	}
}

// Wait waits for the cell's done and returns the cell.
func (p *Pending) Wait() Cell {
	p.d.t.Helper()
	c, err := p.Result()
	if err != nil {
		p.d.t.Fatal(err)
	}
	return c
}

// Result waits for the cell's done; an error when the driver ended first.
func (p *Pending) Result() (Cell, error) {
	for !p.done {
		if !p.step() {
			return p.cell, fmt.Errorf("the driver ended during cell %d: %s (stdout %q, stderr %q)", p.cell.ID, p.d.describeEnd(), p.cell.Stdout, p.cell.Stderr)
		}
	}
	// Output written after done (a forked child, a thread) is not the
	// cell's; it is left for the next cell.
	return p.cell, nil
}

// Run runs code as one cell and returns what it produced.
func (d *Driver) Run(code string) Cell {
	d.t.Helper()
	return d.Start(code).Wait()
}

// Interrupt sends SIGINT to the driver process and, while a cell runs,
// again every 50 ms until it ends, as runhost-init does.
func (d *Driver) Interrupt() {
	d.t.Helper()
	if err := d.tr.interrupt(); err != nil {
		d.t.Fatalf("interrupt: %v", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running == 0 || d.again != nil || d.exited != nil {
		return
	}
	stop := make(chan struct{})
	d.again = stop
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = d.tr.interrupt()
			}
		}
	}()
}

func (d *Driver) stopInterruptLocked() {
	if d.again != nil {
		close(d.again)
		d.again = nil
	}
}

// Wait waits for the driver to end (after a cell killed it, or after
// CloseRequests) and returns how it ended.
func (d *Driver) Wait() Exit {
	d.t.Helper()
	for {
		if _, ok := d.take(func() string { return "the driver to end" }); !ok {
			break
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exited == nil {
		d.t.Fatalf("the driver's stream broke: %v", d.failure)
	}
	return *d.exited
}

// CloseRequests closes the driver's fd 3, which asks it to end.
func (d *Driver) CloseRequests() {
	if err := d.tr.closeRequests(); err != nil {
		d.t.Errorf("close requests: %v", err)
	}
}

// Stray lists messages that belonged to no running cell.
func (d *Driver) Stray() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.stray...)
}

// cleanup ends the driver at the end of the test.
func (d *Driver) cleanup() {
	d.mu.Lock()
	ended := d.exited != nil || d.failure != nil
	d.mu.Unlock()
	if !ended {
		_ = d.tr.closeRequests()
		deadline := time.After(30 * time.Second)
		for {
			d.mu.Lock()
			ended = d.exited != nil || d.failure != nil
			ch := d.changed
			d.mu.Unlock()
			if ended {
				break
			}
			select {
			case <-ch:
				continue
			case <-deadline:
			}
			break
		}
	}
	d.tr.kill()
	if dk, ok := d.tr.(*docker); ok {
		if left := dk.leftover(); left != "" {
			d.t.Errorf("container left behind: %s", left)
		}
	}
}

// exitOf describes a finished process.
func exitOf(ps *os.ProcessState) *Exit {
	e := &Exit{Code: ps.ExitCode()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal().String()
	}
	return e
}

var errClosed = errors.New("requests closed")
