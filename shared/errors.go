package shared

import (
	"errors"
	"fmt"
)

// ErrInvalidRequest marks errors caused by the request rather than by the
// plugin. The host answers them with HTTP 400. Make them with Invalidf.
var ErrInvalidRequest = errors.New("invalid request")

// Invalidf returns an error for a request the runtime cannot run, with a
// message for the caller. It matches ErrInvalidRequest with errors.Is.
func Invalidf(format string, args ...any) error {
	return &requestError{message: fmt.Sprintf(format, args...)}
}

type requestError struct{ message string }

func (e *requestError) Error() string        { return e.message }
func (e *requestError) Is(target error) bool { return target == ErrInvalidRequest }
