// Package shimframe is the framing kernelshim and kerneltest share: a tag
// byte, a 4-byte big-endian length, then the payload.
package shimframe

import (
	"encoding/binary"
	"io"
)

// Read reads one frame from r.
func Read(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	payload := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return h[0], payload, nil
}
