package runner

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/pathguard"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/shared"
)

// refusalCode names how err is refused: an InvalidError's code,
// "limit_exceeded" or "unsafe_path" (as the API maps them), or "" for none.
func refusalCode(err error) string {
	var ie *InvalidError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ie):
		return ie.Code
	case errors.Is(err, policy.ErrLimitExceeded):
		return "limit_exceeded"
	case errors.Is(err, pathguard.ErrUnsafePath):
		return "unsafe_path"
	}
	return "unclassified: " + err.Error()
}

func TestValidate(t *testing.T) {
	code := func(r shared.RunRequest) shared.RunRequest {
		if r.Code == "" && r.Files == nil && r.Dockerfile == "" && r.Command.Shell == "" && r.Command.Argv == nil {
			r.Code = "1"
		}
		return r
	}
	n := func(count int, s string) []string {
		out := make([]string, count)
		for i := range out {
			out[i] = s
		}
		return out
	}
	vars := func(count int) map[string]string {
		m := map[string]string{}
		for i := range count {
			m[fmt.Sprintf("V%d", i)] = "x"
		}
		return m
	}
	files := func(count int) []shared.File {
		out := make([]shared.File, count)
		for i := range out {
			out[i] = shared.File{Path: fmt.Sprintf("f%d", i)}
		}
		return out
	}
	long := strings.Repeat("x", MaxArgBytes/4+1)
	cases := []struct {
		name string
		req  Request
		want string
	}{
		{"code", Request{RunRequest: code(shared.RunRequest{})}, ""},
		{"files", Request{RunRequest: shared.RunRequest{Files: files(MaxFiles), Entry: "f1"}}, ""},
		{"argv command", Request{RunRequest: shared.RunRequest{Command: shared.Command{Argv: []string{"true"}}}}, ""},
		{"shell command", Request{RunRequest: shared.RunRequest{Command: shared.Command{Shell: "true"}}}, ""},
		{"dockerfile", Request{RunRequest: shared.RunRequest{Dockerfile: "FROM x"}}, ""},
		{"context path", Request{ContextPath: "proj"}, ""},
		{"limits at the bounds", Request{RunRequest: code(shared.RunRequest{}), Limits: policy.Requested{Timeout: MaxTimeoutMS * time.Millisecond, MemoryBytes: MaxMemoryMB << 20, CPUs: MaxCPUs}}, ""},
		{"bounds of every list", Request{RunRequest: code(shared.RunRequest{Args: n(MaxArgs, "a"), Env: vars(MaxEnv), BuildArgs: vars(MaxEnv)})}, ""},

		{"no program", Request{Stdin: []byte("x")}, "no_code"},
		{"empty command", Request{RunRequest: shared.RunRequest{Command: shared.Command{Argv: []string{}}}}, "no_code"},
		{"negative timeout", Request{RunRequest: code(shared.RunRequest{}), Limits: policy.Requested{Timeout: -1}}, "limit_exceeded"},
		{"timeout beyond the bound", Request{RunRequest: code(shared.RunRequest{}), Limits: policy.Requested{Timeout: MaxTimeoutMS*time.Millisecond + 1}}, "limit_exceeded"},
		{"negative memory", Request{RunRequest: code(shared.RunRequest{}), Limits: policy.Requested{MemoryBytes: -1}}, "limit_exceeded"},
		{"memory beyond the bound", Request{RunRequest: code(shared.RunRequest{}), Limits: policy.Requested{MemoryBytes: MaxMemoryMB<<20 + 1}}, "limit_exceeded"},
		{"negative cpus", Request{RunRequest: code(shared.RunRequest{}), Limits: policy.Requested{CPUs: -1}}, "limit_exceeded"},
		{"cpus beyond the bound", Request{RunRequest: code(shared.RunRequest{}), Limits: policy.Requested{CPUs: MaxCPUs + 1}}, "limit_exceeded"},
		{"cpus not a number", Request{RunRequest: code(shared.RunRequest{}), Limits: policy.Requested{CPUs: math.NaN()}}, "limit_exceeded"},
		{"too many files", Request{RunRequest: shared.RunRequest{Files: files(MaxFiles + 1)}}, "too_many_files"},
		{"absolute file", Request{RunRequest: shared.RunRequest{Files: []shared.File{{Path: "/etc/passwd"}}}}, "unsafe_path"},
		{"file escaping", Request{RunRequest: shared.RunRequest{Files: []shared.File{{Path: "a/../../b"}}}}, "unsafe_path"},
		{"empty file path", Request{RunRequest: shared.RunRequest{Files: []shared.File{{Path: ""}}}}, "unsafe_path"},
		{"file twice", Request{RunRequest: shared.RunRequest{Files: []shared.File{{Path: "a"}, {Path: "a"}}}}, "duplicate_file"},
		{"entry escaping", Request{RunRequest: code(shared.RunRequest{Entry: "../a"})}, "unsafe_path"},
		{"too many args", Request{RunRequest: code(shared.RunRequest{Args: n(MaxArgs+1, "a")})}, "too_many_args"},
		{"args too long", Request{RunRequest: code(shared.RunRequest{Args: n(4, long)})}, "too_many_args"},
		{"NUL in an arg", Request{RunRequest: code(shared.RunRequest{Args: []string{"a\x00"}})}, "invalid_arg"},
		{"argv too long", Request{RunRequest: shared.RunRequest{Command: shared.Command{Argv: n(MaxArgs+1, "a")}}}, "too_many_args"},
		{"argv bytes", Request{RunRequest: shared.RunRequest{Command: shared.Command{Argv: n(4, long)}}}, "too_many_args"},
		{"NUL in the argv", Request{RunRequest: shared.RunRequest{Command: shared.Command{Argv: []string{"a\x00"}}}}, "invalid_arg"},
		{"NUL in the shell line", Request{RunRequest: shared.RunRequest{Command: shared.Command{Shell: "a\x00"}}}, "invalid_arg"},
		{"shell line too long", Request{RunRequest: shared.RunRequest{Command: shared.Command{Shell: strings.Repeat("x", MaxArgBytes+1)}}}, "too_many_args"},
		{"too many env entries", Request{RunRequest: code(shared.RunRequest{Env: vars(MaxEnv + 1)})}, "too_many_env"},
		{"env name", Request{RunRequest: code(shared.RunRequest{Env: map[string]string{"A-B": ""}})}, "invalid_env"},
		{"empty env name", Request{RunRequest: code(shared.RunRequest{Env: map[string]string{"": ""}})}, "invalid_env"},
		{"env value NUL", Request{RunRequest: code(shared.RunRequest{Env: map[string]string{"A": "\x00"}})}, "invalid_env"},
		{"env value too long", Request{RunRequest: code(shared.RunRequest{Env: map[string]string{"A": strings.Repeat("x", MaxEnvValueBytes+1)}})}, "invalid_env"},
		{"too many build_args", Request{RunRequest: code(shared.RunRequest{BuildArgs: vars(MaxEnv + 1)})}, "invalid_request"},
		{"build_args name", Request{RunRequest: code(shared.RunRequest{BuildArgs: map[string]string{"9": ""}})}, "invalid_request"},
		{"build_args value", Request{RunRequest: code(shared.RunRequest{BuildArgs: map[string]string{"A": "\x00"}})}, "invalid_request"},
		{"network", Request{RunRequest: code(shared.RunRequest{}), Network: &policy.NetworkRequest{Allow: []string{"api.github.com", "*.example.org:443"}}}, ""},
		{"network none", Request{RunRequest: code(shared.RunRequest{}), Network: &policy.NetworkRequest{}}, ""},
		{"network IP address", Request{RunRequest: code(shared.RunRequest{}), Network: &policy.NetworkRequest{Allow: []string{"169.254.169.254"}}}, "invalid_network"},
		{"network everything", Request{RunRequest: code(shared.RunRequest{}), Network: &policy.NetworkRequest{Allow: []string{"*"}}}, "invalid_network"},
		{"network too many", Request{RunRequest: code(shared.RunRequest{}), Network: &policy.NetworkRequest{Allow: n(65, "a.example.org")}}, "invalid_network"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate()
			if got := refusalCode(err); got != tc.want {
				t.Errorf("%q (%v), want %q", got, err, tc.want)
			}
			if err != nil && !errors.Is(err, shared.ErrInvalidRequest) && !errors.Is(err, policy.ErrLimitExceeded) && !errors.Is(err, pathguard.ErrUnsafePath) {
				t.Errorf("%v is no request refusal", err)
			}
		})
	}
}

func TestValidateSessionSpec(t *testing.T) {
	cases := []struct {
		spec SessionSpec
		want string
	}{
		{SessionSpec{Runtime: "python"}, ""},
		{SessionSpec{}, "invalid_request"},
		{SessionSpec{Runtime: "python", Limits: policy.Requested{MemoryBytes: -1}}, "limit_exceeded"},
		{SessionSpec{Runtime: "python", Limits: policy.Requested{CPUs: MaxCPUs + 1}}, "limit_exceeded"},
		{SessionSpec{Runtime: "python", Network: &policy.NetworkRequest{Allow: []string{"api.github.com"}}}, ""},
		{SessionSpec{Runtime: "python", Network: &policy.NetworkRequest{Allow: []string{"localhost:8080"}}}, "invalid_network"},
	}
	for _, tc := range cases {
		if got := refusalCode(tc.spec.Validate()); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.spec, got, tc.want)
		}
	}
}

// TestRequestedLimits: wire numbers become requested limits without
// overflowing; what is beyond the bounds stays beyond them.
func TestRequestedLimits(t *testing.T) {
	cases := []struct {
		ms, mb, cpus float64
		want         policy.Requested
		valid        bool
	}{
		{0, 0, 0, policy.Requested{}, true},
		{1500, 128, 0.5, policy.Requested{Timeout: 1500 * time.Millisecond, MemoryBytes: 128 << 20, CPUs: 0.5}, true},
		{0.5, 0, 0, policy.Requested{Timeout: 500 * time.Microsecond}, true},
		{MaxTimeoutMS, MaxMemoryMB, MaxCPUs, policy.Requested{Timeout: MaxTimeoutMS * time.Millisecond, MemoryBytes: MaxMemoryMB << 20, CPUs: MaxCPUs}, true},
		{math.MaxInt64, 0, 0, policy.Requested{Timeout: (MaxTimeoutMS + 1) * time.Millisecond}, false},
		{1e300, 0, 0, policy.Requested{Timeout: (MaxTimeoutMS + 1) * time.Millisecond}, false},
		{0, 9007199254740991, 0, policy.Requested{MemoryBytes: (MaxMemoryMB + 1) << 20}, false},
		{0, 0, math.Inf(1), policy.Requested{CPUs: MaxCPUs + 1}, false},
		{-5, 0, 0, policy.Requested{Timeout: -time.Millisecond}, false},
		{0, -math.MaxInt64, 0, policy.Requested{MemoryBytes: -1 << 20}, false},
	}
	for _, tc := range cases {
		got := RequestedLimits(tc.ms, tc.mb, tc.cpus)
		if got != tc.want {
			t.Errorf("RequestedLimits(%g, %g, %g) = %+v, want %+v", tc.ms, tc.mb, tc.cpus, got, tc.want)
		}
		if err := validateLimits(got); (err == nil) != tc.valid {
			t.Errorf("RequestedLimits(%g, %g, %g): validate %v, want valid %v", tc.ms, tc.mb, tc.cpus, err, tc.valid)
		}
	}
}
