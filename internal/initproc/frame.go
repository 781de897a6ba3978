// Package initproc is runhost's init: the small static program that is PID 1
// of every run container. The host cannot copy files into a container whose
// root filesystem is read-only and whose run directory is a tmpfs, so it sends
// them on the container's stdin instead, in a frame ahead of the program's
// own stdin:
//
//	"RUNHOST1" | uint32 big-endian header length | header JSON | file bytes... | program stdin...
//
// init reads exactly the frame (never a byte more), writes the files into the
// run directory, then starts the command with the rest of stdin as its stdin,
// forwards signals, reaps orphans and exits with the command's status.
// Because the program arrives on stdin, a container can be created and started
// before its job is known, which is what a warm pool needs.
package initproc

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Magic opens every frame; it also versions the frame format.
const Magic = "RUNHOST1"

// CancelMagic is the whole of a cancel message: in a session, the host
// sends it while a run goes to stop that run (its processes, not the
// session). init kills the run and reports its exit with Cancelled set; a
// cancel that arrives between runs is ignored.
const CancelMagic = "RUNHOSTK"

// MaxHeaderBytes bounds the header JSON.
const MaxHeaderBytes = 4 << 20

// Header describes the run: where files go, what to start, with which environment.
type Header struct {
	Dir     string       `json:"dir"`     // run directory; files are placed under it
	WorkDir string       `json:"workdir"` // where the command starts: Dir or below
	Command []string     `json:"command"` // argv; argv[0] is looked up in the job's PATH
	Env     []string     `json:"env"`     // KEY=VALUE, on top of init's own environment (the image's)
	Files   []FileHeader `json:"files"`   // contents follow the header, in this order
	// ReadyFile, when set, is created (empty) after the command exits 0:
	// the mark of a finished install in a cache volume.
	ReadyFile string `json:"ready_file,omitempty"`
	// Forward, when set, makes init accept TCP connections on Listen (a
	// loopback address) and pipe each to the unix socket Socket: how a
	// container without a network reaches the egress proxy.
	Forward *Forward `json:"forward,omitempty"`
	// TimeoutMS, when positive, is the run's wall-clock limit, enforced by
	// init: it kills every process of the run and reports timed_out.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Session keeps init alive after the run: it reports the exit, kills
	// what the run left running, and reads the next header. The program's
	// stdin is then StdinSize bytes after the files, not the rest of stdin.
	Session   bool  `json:"session,omitempty"`
	StdinSize int64 `json:"stdin_size,omitempty"`
	// OutputLimit, when positive, stops the run once its stdout or its
	// stderr passes this many bytes: init kills every process of the run
	// and reports OutputLimitExceeded. Nothing past the limit is framed.
	OutputLimit int64 `json:"output_limit,omitempty"`
	// Kernel starts the session's resident interpreter (see kernel.go);
	// Cell sends it a cell, whose code is the StdinSize bytes of stdin.
	Kernel *Kernel `json:"kernel,omitempty"`
	Cell   bool    `json:"cell,omitempty"`
	// Hold keeps init alive after a command that succeeded: it reports the
	// exit, kills what the command left running, and then waits to be
	// killed. A volume that exists only while a container uses it (an
	// install's size-capped output, a tmpfs) so stays until the host has
	// copied it out.
	Hold bool `json:"hold,omitempty"`
	// LingerMS keeps init alive this long after it wrote the exit frame
	// (the host removes the container once it has read it). A Kubernetes
	// attach stream can drop what is still on its way when the container
	// ends, the tail of the output and the exit frame with it.
	LingerMS int64 `json:"linger_ms,omitempty"`
	// Capped, when set, is a directory on a size-capped filesystem (an
	// install's output): init watches its free space while the command runs
	// and says in the exit whether it filled up.
	Capped string `json:"capped,omitempty"`
}

// Output frames. init never gives the program the container's stdout: it
// copies the program's stdout and stderr into frames on its own stdout,
// and ends every run with an exit frame, so the host knows the outcome the
// moment the program ends, without waiting for the container to stop.
//
//	kind byte | uint32 big-endian length | payload
const (
	FrameStdout byte = 'o'
	FrameStderr byte = 'e'
	FrameExit   byte = 'x' // payload: Exit as JSON
)

// MaxFramePayload bounds one output frame.
const MaxFramePayload = 1 << 20

// Exit is how a run ended.
type Exit struct {
	Code      int  `json:"code"` // exit status, or 128+signal
	TimedOut  bool `json:"timed_out,omitempty"`
	OOMKilled bool `json:"oom_killed,omitempty"`
	// CappedFull: the header's Capped directory had (almost) no free space
	// left at some point of the run.
	CappedFull bool  `json:"capped_full,omitempty"`
	DurationMS int64 `json:"duration_ms"`
	// OutputLimitExceeded: the run wrote more than Header.OutputLimit on a
	// stream and was killed for it.
	OutputLimitExceeded bool `json:"output_limit_exceeded,omitempty"`
	// Cancelled: the host cancelled the run (its caller went away).
	Cancelled bool `json:"cancelled,omitempty"`
	// Restarted: a cell's interpreter had to be started again (it did not
	// stop when interrupted, or it died); its state is lost.
	Restarted bool `json:"restarted,omitempty"`
	// CellError is the exception a cell raised.
	CellError *CellError `json:"cell_error,omitempty"`
	// Error is init's own failure (bad frame, command not found).
	Error string `json:"error,omitempty"`
	// Network is what the run asked the egress proxy for, when its
	// container forwards with a token (see Forward).
	Network *NetworkLog `json:"network,omitempty"`
}

// ReadFrame reads one output frame. The payload is valid until the next call.
func ReadFrame(r io.Reader, buf []byte) (kind byte, payload []byte, err error) {
	var pre [5]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(pre[1:])
	if n > MaxFramePayload {
		return 0, nil, fmt.Errorf("output frame of %d bytes", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return pre[0], buf, nil
}

// WriteOutputFrame writes one output frame.
func WriteOutputFrame(w io.Writer, kind byte, payload []byte) error {
	var pre [5]byte
	pre[0] = kind
	binary.BigEndian.PutUint32(pre[1:], uint32(len(payload)))
	if _, err := w.Write(pre[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// Forward is a loopback listener piped to a unix socket: how a container
// without a network reaches the egress proxy.
type Forward struct {
	Listen string `json:"listen"`
	Socket string `json:"socket"`
	// Token, when set, is put in the first request head of every
	// connection (Proxy-Authorization: Bearer, replacing any the program
	// sent), and each request's target and the proxy's answer are
	// reported in the exit frames (Exit.Network).
	Token string `json:"token,omitempty"`
	// CA, when set, is written to CAFile (an absolute path in a writable
	// directory, such as /tmp) before the forward starts: the PEM bundle
	// the program's environment names.
	CA     string `json:"ca,omitempty"`
	CAFile string `json:"ca_file,omitempty"`
}

// NetworkLog is what a run asked the egress proxy for, as host:port:
// what it reached, what the proxy refused (not granted, or an address no
// run may reach) and what could not be reached (no such host, the proxy
// gone). Each list is sorted and holds each target once.
type NetworkLog struct {
	Contacted []string `json:"contacted"`
	Refused   []string `json:"refused"`
	Failed    []string `json:"failed,omitempty"`
}

// FileHeader names one file and the number of bytes of it that follow.
type FileHeader struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Dir, when set, is the directory Path is under instead of the
	// header's Dir: an absolute clean path (a workspace run's plugin-made
	// files go to the private run directory, the caller's to the workspace).
	Dir string `json:"dir,omitempty"`
}

// WriteFrame writes the frame for h and contents (one per h.Files entry).
func WriteFrame(w io.Writer, h Header, contents [][]byte) error {
	if len(contents) != len(h.Files) {
		return fmt.Errorf("frame: %d file headers but %d contents", len(h.Files), len(contents))
	}
	for i := range h.Files {
		h.Files[i].Size = int64(len(contents[i]))
	}
	js, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("frame: encode header: %w", err)
	}
	if len(js) > MaxHeaderBytes {
		return fmt.Errorf("frame: header is %d bytes, more than %d", len(js), MaxHeaderBytes)
	}
	buf := make([]byte, 0, len(Magic)+4+len(js))
	buf = append(buf, Magic...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(js)))
	buf = append(buf, js...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	for _, c := range contents {
		if _, err := w.Write(c); err != nil {
			return err
		}
	}
	return nil
}

// errCancel is ReadHeader's answer to a cancel message.
var errCancel = errors.New("cancel message")

// ReadHeader reads the magic and the header from r, and nothing more; the
// file contents follow in r. A cancel message instead of a frame is
// errCancel.
func ReadHeader(r io.Reader) (Header, error) {
	var magic [len(Magic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return Header{}, fmt.Errorf("read frame: %w", err)
	}
	switch string(magic[:]) {
	case Magic:
	case CancelMagic:
		return Header{}, errCancel
	default:
		return Header{}, errors.New("read frame: bad magic (is the host newer or older than this init?)")
	}
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return Header{}, fmt.Errorf("read frame: %w", err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > MaxHeaderBytes {
		return Header{}, fmt.Errorf("read frame: header of %d bytes is too large", n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return Header{}, fmt.Errorf("read frame header: %w", err)
	}
	var h Header
	if err := json.Unmarshal(js, &h); err != nil {
		return Header{}, fmt.Errorf("decode frame header: %w", err)
	}
	if len(h.Command) == 0 {
		return Header{}, errors.New("frame header: empty command")
	}
	return h, nil
}
