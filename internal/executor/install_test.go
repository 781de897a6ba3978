package executor

import (
	"strings"
	"testing"
)

// A failed install whose log shows an untrusted certificate says which
// setting fixes it; other failures and successes are left as they are.
func TestInstallFailureNamesTheCABundle(t *testing.T) {
	tests := []struct {
		name   string
		res    Result
		failed bool
		hint   bool
	}{
		{"npm behind a re-signing proxy", Result{ExitCode: 1, Stderr: []byte("npm error code SELF_SIGNED_CERT_IN_CHAIN\nnpm error errno SELF_SIGNED_CERT_IN_CHAIN\n")}, true, true},
		{"pip", Result{ExitCode: 1, Stdout: []byte("Could not fetch URL https://pypi.org/simple/x/: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain")}, true, true},
		{"node's own wording", Result{ExitCode: 1, Stderr: []byte("Error: unable to get local issuer certificate")}, true, true},
		{"no such package", Result{ExitCode: 1, Stderr: []byte("npm error 404 Not Found - GET https://registry.npmjs.org/nope")}, true, false},
		{"timed out", Result{TimedOut: true}, true, false},
		{"succeeded", Result{Stderr: []byte("self-signed certificate")}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InstallFailure(tt.res, &Install{})
			if (got != nil) != tt.failed {
				t.Fatalf("failed = %v, want %v", got != nil, tt.failed)
			}
			if got == nil {
				return
			}
			if hint := strings.Contains(string(got.Stderr), "RUNHOST_CA_BUNDLE"); hint != tt.hint {
				t.Errorf("names RUNHOST_CA_BUNDLE: %v, want %v (stderr %q)", hint, tt.hint, got.Stderr)
			}
		})
	}
}
