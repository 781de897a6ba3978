// Package kernel is the protocol "runhost-kernel/1" between runhost-init and
// the driver of an interpreter session: the resident process a runtime plugin
// ships (plugins/python/kernel.py, plugins/node/kernel.js) that runs cells one
// after another in the same interpreter state.
//
// init starts the driver once per session, as a long-lived process, with
// fd 0 = /dev/null, fd 1 and fd 2 = pipes that are the current cell's stdout
// and stderr, fd 3 = requests (the driver reads), fd 4 = events (the driver
// writes). Every message on fd 3 and fd 4 is a 4-byte big-endian length, then
// that many bytes of UTF-8 JSON:
//
//	driver: {"type":"ready","language":"python","version":"3.11.2","features":["display",...]}
//	init:   {"id":1,"code":"x = 1\nx + 1"}
//	driver: {"id":1,"type":"result","data":{"text/plain":"2"},"metadata":{}}
//	driver: {"id":1,"type":"done","error":null}
//
// One request at a time. While a cell runs the driver sends any number of
// results (one per rich output, in order), then exactly one done, with
// "error": {"name","value","traceback"} when the cell raised. Before done it
// has flushed what the cell wrote to fd 1 and fd 2, so a reader that drains
// those pipes before it acts on done (as [Demux] does) sees all of the cell's
// output. SIGINT interrupts the running cell; the driver answers done with
// the error "KeyboardInterrupt" (Python) or "Interrupted" (Node) and keeps
// its state. A cell that ends the interpreter ends the driver.
package kernel

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Protocol names this protocol and its version.
const Protocol = "runhost-kernel/1"

// Event types.
const (
	TypeReady  = "ready"
	TypeResult = "result"
	TypeDone   = "done"
)

// MIME types a result may carry; text/plain is always there. Binary images
// are base64 strings, application/json is a JSON value, the rest are text.
var MIMETypes = []string{
	"text/plain", "text/html", "text/markdown", "text/latex",
	"image/png", "image/jpeg", "image/svg+xml", "application/json",
}

// Request is one cell, from init to the driver.
type Request struct {
	ID   int64  `json:"id"`
	Code string `json:"code"`
}

// Event is a message from the driver: the ready message (Language, Version,
// Features), a result (ID, Data, Metadata) or a cell's done (ID, Error).
type Event struct {
	Type     string                     `json:"type"`
	ID       int64                      `json:"id,omitempty"`
	Language string                     `json:"language,omitempty"`
	Version  string                     `json:"version,omitempty"`
	Features []string                   `json:"features,omitempty"`
	Data     map[string]json.RawMessage `json:"data,omitempty"`
	Metadata map[string]json.RawMessage `json:"metadata,omitempty"`
	Error    *CellError                 `json:"error,omitempty"`
}

// CellError is what a cell raised: the exception's type name, its message,
// and the traceback as lines (no ANSI colour; the user's cell is the top,
// the driver's own frames are removed).
type CellError struct {
	Name      string   `json:"name"`
	Value     string   `json:"value"`
	Traceback []string `json:"traceback"`
}

// ErrTooLarge is a message longer than the reader allows.
var ErrTooLarge = errors.New("kernel message too large")

// WriteMessage writes v as one message: its length, then its JSON.
func WriteMessage(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode kernel message: %w", err)
	}
	return WriteRaw(w, body)
}

// WriteRaw writes body, which is JSON already, as one message.
func WriteRaw(w io.Writer, body []byte) error {
	if uint64(len(body)) > 0xFFFFFFFF {
		return ErrTooLarge
	}
	msg := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(msg, uint32(len(body)))
	copy(msg[4:], body)
	_, err := w.Write(msg)
	return err
}

// ReadMessage reads one message and returns its JSON. A message longer than
// max is ErrTooLarge (and the stream is then out of step: stop reading).
// io.EOF means the stream ended between messages.
func ReadMessage(r io.Reader, max uint32) ([]byte, error) {
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(header[:])
	if n > max {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// Stream says where a piece of a driver's output came from.
type Stream int

// The driver's three output pipes.
const (
	Stdout Stream = 1 // fd 1
	Stderr Stream = 2 // fd 2
	Events Stream = 4 // fd 4: Data is one message's JSON
)

// Output is one piece of what a driver wrote.
type Output struct {
	Stream Stream
	Data   []byte
}
