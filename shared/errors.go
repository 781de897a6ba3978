package shared

import (
	"errors"
	"fmt"
)

// ErrInvalidRequest marks errors caused by the request rather than by the
// plugin. The host answers them with HTTP 400.
var ErrInvalidRequest = errors.New("invalid request")

// ErrConnectionLost means the host lost its connection to the plugin
// process mid-call: it crashed or stopped answering.
var ErrConnectionLost = errors.New("plugin connection lost")

// RequestError is a request the runtime cannot run, with a message for the
// caller. It matches ErrInvalidRequest with errors.Is.
type RequestError struct {
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// Is reports whether target is ErrInvalidRequest.
func (e *RequestError) Is(target error) bool { return target == ErrInvalidRequest }

// Invalidf returns a RequestError with a formatted message.
func Invalidf(format string, args ...any) error {
	return &RequestError{Message: fmt.Sprintf(format, args...)}
}
