package auth

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeKeys(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestLoadAndCheck(t *testing.T) {
	alice, bob, carol, dave, erin := NewKey(), NewKey(), NewKey(), NewKey(), NewKey()
	content := "# runhost keys\nalice " + Hash(alice) + "\n\n" + Hash(bob) + "\n" +
		"  carol " + Hash(carol) + " operator workspaces=proj,shared-1  \n" +
		"backend.prod " + Hash(dave) + " workspaces=*\n" +
		"seed " + Hash(erin) + " egress=API.example.org,*.example.net:443 egress-default build-egress\n"
	k, err := Load(writeKeys(t, content))
	if err != nil {
		t.Fatal(err)
	}
	if k.Len() != 5 {
		t.Errorf("Len = %d", k.Len())
	}
	tests := []struct {
		key  string
		want Identity
		err  error
	}{
		{alice, Identity{Name: "alice"}, nil},
		{bob, Identity{Name: "key-" + Hash(bob)[:8]}, nil},
		{carol, Identity{Name: "carol", Operator: true, Workspaces: []string{"proj", "shared-1"}}, nil},
		{dave, Identity{Name: "backend.prod", AllWorkspaces: true}, nil},
		{erin, Identity{Name: "seed", Egress: []string{"api.example.org", "*.example.net:443"}, EgressDefault: true, BuildEgress: true}, nil},
		{"", Identity{}, ErrUnauthorized},
		{"rh_wrong", Identity{}, ErrUnauthorized},
		{Hash(alice), Identity{}, ErrUnauthorized}, // the stored hash is not a key
	}
	for _, tt := range tests {
		id, err := k.Check(tt.key)
		if !reflect.DeepEqual(id, tt.want) || !errors.Is(err, tt.err) {
			t.Errorf("Check(%.10q) = %+v, %v; want %+v, %v", tt.key, id, err, tt.want, tt.err)
		}
	}
	// A caller cannot change the stored grants through the returned identity.
	id, _ := k.Check(carol)
	id.Workspaces[0] = "other"
	if again, _ := k.Check(carol); again.Workspaces[0] != "proj" {
		t.Errorf("the stored identity changed: %+v", again)
	}
}

func TestLoadRejects(t *testing.T) {
	h, h2 := Hash("x"), Hash("y")
	tests := []struct {
		name, content string
		want          string // part of the error
	}{
		{"plain key", "rh_abcdef\n", ":1: "},
		{"short hash", "abcd\n", "not a hex SHA-256"},
		{"empty", "# nothing\n", "holds no keys"},
		{"three cols", "a b " + h + "\n", "not a hex SHA-256"},
		{"hash then option", h + " operator\n", "not a hex SHA-256"},
		{"unknown option", "a " + h + " admin\n", `unknown option "admin"`},
		{"option with a value it does not take", "a " + h + " operator=yes\n", "unknown option"},
		{"workspaces without a value", "a " + h + " workspaces\n", "unknown option"},
		{"empty workspaces", "a " + h + " workspaces=\n", "not a workspace name"},
		{"bad workspace name", "a " + h + " workspaces=../x\n", "not a workspace name"},
		{"hidden workspace name", "a " + h + " workspaces=.tenants\n", "not a workspace name"},
		{"star among names", "a " + h + " workspaces=proj,*\n", "not a workspace name"},
		{"workspace twice", "a " + h + " workspaces=p,p\n", "given twice"},
		{"option twice", "a " + h + " operator operator\n", "given twice"},
		{"name starting with -", "-a " + h + "\n", "key name"},
		{"name --help", "--help " + h + "\n", "key name"},
		{"hidden name", ".tenants " + h + "\n", "key name"},
		{"name too long", strings.Repeat("n", 65) + " " + h + "\n", "key name"},
		{"duplicate name", "a " + h + "\n# c\na " + h2 + "\n", `:3: the name "a" is already used on line 1`},
		{"egress without hosts", "a " + h + " egress=\n", "not an allowed host pattern"},
		{"egress without a value", "a " + h + " egress\n", "unknown option"},
		{"egress to an IP address", "a " + h + " egress=10.0.0.1\n", "an IP address"},
		{"egress to the metadata address", "a " + h + " egress=169.254.169.254:80\n", "an IP address"},
		{"egress to localhost", "a " + h + " egress=db.localhost\n", "private network or this machine"},
		{"egress to a private name", "a " + h + " egress=metadata.google.internal\n", "private network or this machine"},
		{"egress to everything", "a " + h + " egress=*\n", "every host"},
		{"egress over a public suffix", "a " + h + " egress=*.co.uk\n", "public suffix"},
		{"egress with a port range", "a " + h + " egress=api.example.org:1-1024\n", "no ranges"},
		{"egress-default without egress", "a " + h + " egress-default\n", "egress-default needs egress="},
		{"egress-default with a value", "a " + h + " egress=x.example.org egress-default=yes\n", "unknown option"},
		{"build-egress with a value", "a " + h + " build-egress=yes\n", "unknown option"},
		{"duplicate hash", "a " + h + "\nb " + h + "\n", ":2: the same key hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeKeys(t, tt.content)
			_, err := Load(file)
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if tt.name != "empty" && !strings.HasPrefix(err.Error(), file+":") {
				t.Errorf("error %q does not name the file and line", err)
			}
		})
	}
}

func TestLine(t *testing.T) {
	h := Hash("k")
	tests := []struct {
		name    string
		options []string
		want    string // empty: refused
	}{
		{"", nil, h},
		{"backend", nil, "backend " + h},
		{"backend", []string{"workspaces=*", "operator"}, "backend " + h + " workspaces=* operator"},
		{"", []string{"operator"}, ""},
		{"--help", nil, ""},
		{"-h", nil, ""},
		{"a b", nil, ""},
		{"a#b", nil, ""},
		{"backend", []string{"root"}, ""},
	}
	for _, tt := range tests {
		got, err := Line(h, tt.name, tt.options)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("Line(%q, %q) = %q, %v; want %q", tt.name, tt.options, got, err, tt.want)
		}
	}
}

func TestIdentitySharedWorkspace(t *testing.T) {
	tests := []struct {
		id   Identity
		name string
		want bool
	}{
		{Anonymous(), "proj", true},
		{Identity{Name: "a", AllWorkspaces: true}, "proj", true},
		{Identity{Name: "a", Workspaces: []string{"proj"}}, "proj", true},
		{Identity{Name: "a", Workspaces: []string{"proj"}}, "other", false},
		{Identity{Name: "a"}, "proj", false},
	}
	for _, tt := range tests {
		if got := tt.id.SharedWorkspace(tt.name); got != tt.want {
			t.Errorf("%+v.SharedWorkspace(%q) = %v", tt.id, tt.name, got)
		}
	}
	if a := Anonymous(); a.Name != AnonymousName || !a.Operator {
		t.Errorf("Anonymous() = %+v: a host without keys has one tenant, who operates it", a)
	}
}

func TestNewKeysDiffer(t *testing.T) {
	a, b := NewKey(), NewKey()
	if a == b || !strings.HasPrefix(a, "rh_") || len(a) < 40 {
		t.Fatalf("NewKey: %q %q", a, b)
	}
}
