package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBundleOf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   string
		bundle string // "" : not a create
	}{
		{"go-runc's run", "--log /s/log.json --log-format json run --bundle /s/b --pid-file /s/pid abc", "/s/b"},
		{"global flags with values named like commands", "--root run --log create --log-format json run -b /x id", "/x"},
		{"create", "--rootless=true create --bundle=/y id", "/y"},
		{"short form with =", "run -b=/z id", "/z"},
		{"no bundle: the working directory", "run id", "."},
		{"state", "--log /l state abc", ""},
		{"kill", "kill abc 9", ""},
		{"exec (an existing container)", "exec --process /p.json abc", ""},
		{"delete", "delete --force abc", ""},
		{"no command", "--version", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := bundleOf(strings.Fields(tc.args))
			if ok != (tc.bundle != "") || got != tc.bundle {
				t.Errorf("bundleOf(%q) = %q, %v; want %q", tc.args, got, ok, tc.bundle)
			}
		})
	}
}

// spec is a runtime spec as BuildKit writes one, with fields withCA must
// keep as they are.
const spec = `{
  "ociVersion": "1.1.0",
  "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/sh", "-c", "pip install x"],
              "env": ["PATH=/usr/bin", "NODE_EXTRA_CA_CERTS=/image/own.pem"], "cwd": "/"},
  "root": {"path": "rootfs"},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    {"destination": "/etc/hosts", "type": "bind", "source": "/b/hosts", "options": ["ro", "rbind"]}
  ],
  "linux": {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}], "namespaces": [{"type": "pid"}]},
  "annotations": {"x": "y"}
}`

func TestWithCA(t *testing.T) {
	out, err := withCA([]byte(spec), "/code/runhost-ca.pem", []string{"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "PIP_CERT"})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Process struct {
			Env  []string
			Args []string
		}
		Mounts []struct {
			Destination, Type, Source string
			Options                   []string
		}
		Linux       json.RawMessage
		Annotations map[string]string
		OCIVersion  string `json:"ociVersion"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{"PATH=/usr/bin", "NODE_EXTRA_CA_CERTS=/image/own.pem", "SSL_CERT_FILE=" + CAPath, "PIP_CERT=" + CAPath}
	if !slices.Equal(got.Process.Env, wantEnv) {
		t.Errorf("env %q, want %q (a variable the step sets stays its own)", got.Process.Env, wantEnv)
	}
	if n := len(got.Mounts); n != 4 {
		t.Fatalf("%d mounts, want the 3 and the bundle", n)
	}
	last := got.Mounts[3]
	if last.Destination != CAPath || last.Type != "bind" || last.Source != "/code/runhost-ca.pem" || !slices.Contains(last.Options, "ro") {
		t.Errorf("the bundle's mount %+v: want a read-only bind after /dev", last)
	}
	if !slices.Equal(got.Process.Args, []string{"/bin/sh", "-c", "pip install x"}) || got.OCIVersion != "1.1.0" ||
		got.Annotations["x"] != "y" || !strings.Contains(string(got.Linux), `"hostID":100000`) {
		t.Errorf("other fields changed: %s", out)
	}
}

func TestWithCARefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		spec string
		want error
	}{
		"no /dev":         {`{"process": {"env": []}, "mounts": [{"destination": "/proc", "type": "proc"}]}`, errNoDevTmpfs},
		"/dev not tmpfs":  {`{"process": {"env": []}, "mounts": [{"destination": "/dev", "type": "bind"}]}`, errNoDevTmpfs},
		"no process":      {`{"mounts": [{"destination": "/dev", "type": "tmpfs"}]}`, nil},
		"taken":           {`{"process": {}, "mounts": [{"destination": "/dev", "type": "tmpfs"}, {"destination": "` + CAPath + `", "type": "bind"}]}`, nil},
		"not a spec":      {`[]`, nil},
		"mounts not list": {`{"process": {}, "mounts": {}}`, nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := withCA([]byte(tc.spec), "/ca", []string{"SSL_CERT_FILE"})
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("withCA: %v, want an error (%v)", err, tc.want)
			}
		})
	}
}

// TestAddCA: the bundle's config.json is rewritten in place, keeping its mode.
func TestAddCA(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(config, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := addCA(config, "/ca.pem", []string{"CURL_CA_BUNDLE"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(config)
	if !strings.Contains(string(b), `"CURL_CA_BUNDLE=`+CAPath+`"`) {
		t.Errorf("config.json after: %s", b)
	}
	if fi, _ := os.Stat(config); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if matches, _ := filepath.Glob(config + ".*"); len(matches) > 0 {
		t.Errorf("left behind %v", matches)
	}
}
