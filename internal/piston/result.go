package piston

import (
	"fmt"
	"sync"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/runner"
)

// Stage is Piston's result of one stage (runhost has only "run").
type Stage struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Output is stdout and stderr interleaved in the order the program
	// wrote them (as far as init saw that order).
	Output string  `json:"output"`
	Code   *int    `json:"code"`   // null when killed by a signal
	Signal *string `json:"signal"` // e.g. "SIGKILL", else null
	// Message and Status are isolate's words in Piston: status RE (runtime
	// error), SG (signal), TO (timeout), OL/EL (stdout/stderr too long),
	// XX (internal error); both null on success.
	Message  *string `json:"message"`
	Status   *string `json:"status"`
	CPUTime  *int64  `json:"cpu_time"` // not measured: null
	WallTime *int64  `json:"wall_time"`
	Memory   *int64  `json:"memory"` // not measured: null
}

// Result is Piston's execute response. Compile is never set: no runhost
// runtime has a compile stage.
type Result struct {
	Language string `json:"language"`
	Version  string `json:"version"`
	Run      Stage  `json:"run"`
}

// signalNames are the Linux signals by number, Piston's list.
var signalNames = []string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
	7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
	13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT",
	19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU",
	25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR",
	31: "SIGSYS",
}

func validSignal(name string) bool {
	for _, s := range signalNames {
		if s != "" && s == name {
			return true
		}
	}
	return false
}

// outcome is how a run ended, in Piston's terms.
type outcome struct {
	code    *int
	signal  *string
	status  *string
	message *string
}

func ptr[T any](v T) *T { return &v }

// outcomeOf maps a runhost result onto Piston's code, signal, status and
// message. runhost reports a program killed by signal N as exit status
// 128+N (as a shell does), so such a status reads as signal N.
func outcomeOf(res executor.Result) outcome {
	code := res.ExitCode
	switch {
	case res.TimedOut:
		return outcome{signal: ptr("SIGKILL"), status: ptr("TO"), message: ptr("Time limit exceeded (wall clock)")}
	case res.OOMKilled:
		return outcome{signal: ptr("SIGKILL"), status: ptr("SG"), message: ptr("Caught fatal signal 9 (out of memory)")}
	case res.OutputLimited && res.StdoutTruncated:
		// Piston kills the program at the limit, as runhost does.
		return outcome{signal: ptr("SIGKILL"), status: ptr("OL"), message: ptr("stdout length exceeded")}
	case res.OutputLimited && res.StderrTruncated:
		return outcome{signal: ptr("SIGKILL"), status: ptr("EL"), message: ptr("stderr length exceeded")}
	case res.StdoutTruncated: // cut, not stopped (an executor that cannot stop it)
		return outcome{code: &code, status: ptr("OL"), message: ptr("stdout length exceeded")}
	case res.StderrTruncated:
		return outcome{code: &code, status: ptr("EL"), message: ptr("stderr length exceeded")}
	case code > 128 && code-128 < len(signalNames):
		sig := code - 128
		return outcome{signal: ptr(signalNames[sig]), status: ptr("SG"), message: ptr(fmt.Sprintf("Caught fatal signal %d", sig))}
	case code != 0:
		return outcome{code: &code, status: ptr("RE"), message: ptr(fmt.Sprintf("Exited with error status %d", code))}
	}
	return outcome{code: &code}
}

// stage builds Piston's run stage from a runhost result and the output as
// it was streamed.
func stage(res runner.Result, interleaved []byte) Stage {
	o := outcomeOf(res.Result)
	output := string(interleaved)
	if len(interleaved) != len(res.Stdout)+len(res.Stderr) {
		// The executor did not stream (or not all of it): no order known.
		output = string(res.Stdout) + string(res.Stderr)
	}
	return Stage{
		Stdout:   string(res.Stdout),
		Stderr:   string(res.Stderr),
		Output:   output,
		Code:     o.code,
		Signal:   o.signal,
		Message:  o.message,
		Status:   o.status,
		WallTime: ptr(res.Duration.Milliseconds()),
	}
}

// interleaver records stdout and stderr in the order they arrive.
type interleaver struct {
	mu  sync.Mutex
	buf []byte
}

func (w *interleaver) write(_ executor.Stream, p []byte) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	w.mu.Unlock()
}

func (w *interleaver) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf
}
