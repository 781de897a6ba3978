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
}

// Forward is a loopback listener piped to a unix socket.
type Forward struct {
	Listen string `json:"listen"`
	Socket string `json:"socket"`
}

// FileHeader names one file and the number of bytes of it that follow.
type FileHeader struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
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

// ReadHeader reads the magic and the header from r, and nothing more; the
// file contents follow in r.
func ReadHeader(r io.Reader) (Header, error) {
	var pre [len(Magic) + 4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, fmt.Errorf("read frame: %w", err)
	}
	if string(pre[:len(Magic)]) != Magic {
		return Header{}, errors.New("read frame: bad magic (is the host newer or older than this init?)")
	}
	n := binary.BigEndian.Uint32(pre[len(Magic):])
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
