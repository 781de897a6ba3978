package api

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/mcp"
)

// create_session forwards POST /sessions' body: the two types name the
// same JSON fields, and the mapping carries every one of them.
func TestSessionArgsMatchSessionRequest(t *testing.T) {
	names := func(v any) []string {
		var out []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
		slices.Sort(out)
		return out
	}
	if a, r := names(mcp.SessionArgs{}), names(SessionRequest{}); !slices.Equal(a, r) {
		t.Fatalf("create_session's fields %v, POST /sessions' %v", a, r)
	}
	a := mcp.SessionArgs{Runtime: "python", Version: "3", Mode: "interpreter", Workspace: "w", TTLS: 5, MemoryMB: 6, CPUs: 0.5, Network: &mcp.Network{Allow: []string{"a.example"}}}
	want := SessionRequest{Runtime: "python", Version: "3", Mode: "interpreter", Workspace: "w", TTLS: 5, MemoryMB: 6, CPUs: 0.5, Network: &Network{Allow: []string{"a.example"}}}
	if got := sessionRequestOf(a); !reflect.DeepEqual(got, want) {
		t.Fatalf("mapped to %+v, want %+v", got, want)
	}
}
