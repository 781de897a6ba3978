package helperimage

import (
	"strings"
	"testing"
)

func TestNamesFollowTheBinary(t *testing.T) {
	a, b := []byte("init v1"), []byte("init v2")
	tests := []struct {
		name, got, repository string
	}{
		{"init", Init(a), InitRepository},
		{"egress", Egress(a), EgressRepository},
	}
	for _, tt := range tests {
		if !strings.HasPrefix(tt.got, tt.repository+":") || len(tt.got) != len(tt.repository)+1+12 {
			t.Errorf("%s: %q is not %s:<12 hex digits>", tt.name, tt.got, tt.repository)
		}
	}
	if again := Init(append([]byte{}, a...)); Init(a) != again || Init(a) == Init(b) {
		t.Errorf("the name must follow the binary's content: %s %s %s", Init(a), again, Init(b))
	}
	// The names the Docker executor used before this package: images already
	// on engines and clusters keep their names.
	if got := Init([]byte("x")); got != "runhost/init:2d711642b726" {
		t.Errorf("Init = %s", got)
	}
}
