//go:build linux || darwin

package kernel

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Demux reads a driver's stdout, stderr and events pipes until all three are
// closed, and calls fn with each piece in the order the driver wrote them:
// the bytes the driver had written to fd 1 and fd 2 before it sent a message
// come before that message (when the events pipe is readable, exactly the
// bytes waiting in the other two pipes are read first, so a process that
// never stops printing cannot hold a message back). maxMessage bounds one
// message. fn's error stops Demux and is returned.
//
// Demux owns the three files: it puts them in blocking mode and closes them.
func Demux(stdout, stderr, events *os.File, maxMessage uint32, fn func(Output) error) error {
	defer stdout.Close()
	defer stderr.Close()
	defer events.Close()
	d := demux{fn: fn, buf: make([]byte, 64<<10)}
	streams := []*pipe{{f: stdout, fd: int(stdout.Fd()), s: Stdout}, {f: stderr, fd: int(stderr.Fd()), s: Stderr}}
	ev := &pipe{f: events, fd: int(events.Fd()), s: Events}
	for {
		var fds []unix.PollFd
		var open []*pipe
		for _, p := range append(streams, ev) {
			if !p.closed {
				fds = append(fds, unix.PollFd{Fd: int32(p.fd), Events: unix.POLLIN})
				open = append(open, p)
			}
		}
		if len(fds) == 0 {
			return nil
		}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("poll the driver's pipes: %w", err)
		}
		eventReady := false
		for i, p := range open {
			if p == ev && fds[i].Revents != 0 {
				eventReady = true
			}
		}
		if eventReady {
			// What the driver wrote before this message is in the pipes now.
			for _, p := range streams {
				if err := d.drainPending(p); err != nil {
					return err
				}
			}
			body, err := ReadMessage(events, maxMessage)
			switch {
			case errors.Is(err, io.EOF):
				ev.closed = true
			case err != nil:
				return fmt.Errorf("read the driver's events: %w", err)
			default:
				if err := fn(Output{Stream: Events, Data: body}); err != nil {
					return err
				}
			}
			continue
		}
		for i, p := range open {
			if p != ev && fds[i].Revents != 0 {
				if err := d.readOnce(p); err != nil {
					return err
				}
			}
		}
	}
}

type pipe struct {
	f      *os.File
	fd     int
	s      Stream
	closed bool
}

type demux struct {
	fn  func(Output) error
	buf []byte
}

// readOnce reads what one read returns and hands it over.
func (d *demux) readOnce(p *pipe) error {
	n, err := unix.Read(p.fd, d.buf)
	switch {
	case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
		return nil
	case err != nil:
		return fmt.Errorf("read the driver's fd %d: %w", p.s, err)
	case n == 0:
		p.closed = true
		return nil
	}
	return d.fn(Output{Stream: p.s, Data: append([]byte(nil), d.buf[:n]...)})
}

// drainPending reads exactly the bytes waiting in the pipe now.
func (d *demux) drainPending(p *pipe) error {
	if p.closed {
		return nil
	}
	pending, err := unix.IoctlGetInt(p.fd, fionread)
	if err != nil {
		return fmt.Errorf("FIONREAD on the driver's fd %d: %w", p.s, err)
	}
	for pending > 0 && !p.closed {
		n, err := unix.Read(p.fd, d.buf[:min(pending, len(d.buf))])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("read the driver's fd %d: %w", p.s, err)
		case n == 0:
			p.closed = true
			return nil
		}
		pending -= n
		if err := d.fn(Output{Stream: p.s, Data: append([]byte(nil), d.buf[:n]...)}); err != nil {
			return err
		}
	}
	return nil
}
