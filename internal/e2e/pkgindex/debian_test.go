package pkgindex

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDebianRequires(t *testing.T) {
	dists := map[string]string{"python3-urllib3": "urllib3", "python3-markupsafe": "MarkupSafe", "python3-six": "six"}
	for _, tc := range []struct {
		name, depends string
		upstream      []string
		want          []string
		err           string
	}{
		{name: "version bound", depends: "python3-urllib3 (>= 1.21.1), python3:any", want: []string{"urllib3>=1.21.1"}},
		{name: "distribution name and operators", depends: "python3-markupsafe (<< 3), python3-six (= 1.16.0-4)", want: []string{"MarkupSafe<3", "six==1.16.0"}},
		{name: "epoch and revision", depends: "python3-six (>> 1:1.2-3+deb12u1)", want: []string{"six>1.2"}},
		{name: "a version that is not plain numbers has no bound", depends: "python3-six (>= 1.16~rc1)", want: []string{"six"}},
		{name: "the interpreter and other packages", depends: "python3 (<< 3.12), python3 (>= 3.11~), libc6 (>= 2.14), ca-certificates", want: nil},
		{name: "an alternative to the interpreter", depends: "python3-importlib-metadata | python3 (>> 3.10)", want: nil},
		{name: "the first alternative there is", depends: "python3-nope | python3-six", want: []string{"six"}},
		{name: "upstream's extra stays an extra", depends: "python3-chardet (>= 3.0.2), python3-urllib3",
			upstream: []string{`chardet<6,>=3.0.2; extra == "use_chardet_on_py3"`}, want: []string{"urllib3"}},
		{name: "upstream's Windows-only requirement", depends: "python3-colorama", upstream: []string{`colorama; platform_system == "Windows"`}, want: nil},
		{name: "a package that is not there", depends: "python3-six, python3-chardet", err: "python3-chardet"},
		{name: "architecture qualifier", depends: "python3-six:any", want: []string{"six"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := debianRequires(tc.depends, dists, tc.upstream)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRequiresTxt(t *testing.T) {
	for _, tc := range []struct {
		name, in     string
		reqs, extras []string
	}{
		{name: "plain", in: "a>=1\nb\n", reqs: []string{"a>=1", "b"}},
		{name: "extra", in: "\n[socks]\nPySocks>=1.5.6\n", reqs: []string{`PySocks>=1.5.6; extra == "socks"`}, extras: []string{"socks"}},
		{name: "marker", in: "[:python_version < \"3.10\"]\nimportlib-metadata>=3.6.0\n", reqs: []string{`importlib-metadata>=3.6.0; python_version < "3.10"`}},
		{name: "extra and marker", in: "[brotli:platform_python_implementation == \"CPython\"]\nbrotli>=1.0.9\n",
			reqs: []string{`brotli>=1.0.9; (platform_python_implementation == "CPython") and (extra == "brotli")`}, extras: []string{"brotli"}},
		{name: "empty sections (Debian strips the requirements)", in: "\n[security]\n\n[:python_version < \"3.8\"]\n", extras: []string{"security"}},
		{name: "a marker on the line", in: "[x]\nc; os_name == \"nt\"\n", reqs: []string{`c; (os_name == "nt") and (extra == "x")`}, extras: []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqs, extras := requiresTxt(tc.in)
			if !slices.Equal(reqs, tc.reqs) || !slices.Equal(extras, tc.extras) {
				t.Fatalf("got %q %q; want %q %q", reqs, extras, tc.reqs, tc.extras)
			}
		})
	}
}

func TestMetadataWithRequires(t *testing.T) {
	m := parseMetadata("Metadata-Version: 2.1\nName: Flask\nVersion: 2.2.2\nLicense: BSD\n   continued\nRequires-Dist: click>=8.0\nProvides-Extra: async\n\nThe description.\n\nMore.\n")
	if m.get("name") != "Flask" || m.get("Version") != "2.2.2" {
		t.Fatalf("name %q version %q", m.get("name"), m.get("Version"))
	}
	got := m.withRequires([]string{"click", "Jinja2>=3.0", `asgiref>=3.2; extra == "async"`, "Jinja2"}, []string{"async", "dotenv"})
	want := "Metadata-Version: 2.1\nName: Flask\nVersion: 2.2.2\nLicense: BSD\n   continued\nRequires-Dist: click>=8.0\nProvides-Extra: async\n" +
		"Requires-Dist: Jinja2>=3.0\nRequires-Dist: asgiref>=3.2; extra == \"async\"\nProvides-Extra: dotenv\n\nThe description.\n\nMore.\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestControlFields(t *testing.T) {
	got := controlFields("Package: python3-flask\nVersion: 2.2.2-3\nDepends: python3-click (>= 8.0),\n python3-jinja2\nDescription: micro\n more\n")
	if got["Package"] != "python3-flask" || got["Version"] != "2.2.2-3" || got["Depends"] != "python3-click (>= 8.0), python3-jinja2" {
		t.Fatalf("%q", got)
	}
}

// TestDebianWheels converts two made-up packages laid out as
// scripts/debian-wheels.sh leaves them, and reads the wheels back.
func TestDebianWheels(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	site := "python3-greet/" + sitePackages + "/"
	write("python3-greet/DEBIAN/control", "Package: python3-greet\nVersion: 1:1.0-2\nDepends: python3-helper (>= 0.5-1), python3:any, libc6\n")
	write(site+"greet/__init__.py", "from helper import x\n")
	write(site+"greet/__pycache__/__init__.cpython-311.pyc", "compiled")
	write(site+"greet/_speedups.cpython-311-x86_64-linux-gnu.so", "ELF")
	write(site+"greet/data/real.txt", "data")
	write(site+"Greet_Pkg-1.0.egg-info/PKG-INFO", "Metadata-Version: 2.1\nName: Greet_Pkg\nVersion: 1.0\n\nGreets.\n")
	write(site+"Greet_Pkg-1.0.egg-info/requires.txt", "\n[fast]\nspeedy\n")
	write(site+"Greet_Pkg-1.0.egg-info/entry_points.txt", "[console_scripts]\ngreet = greet:main\n")
	write(site+"Greet_Pkg-1.0.egg-info/SOURCES.txt", "not in the wheel\n")
	write("python3-greet/usr/share/javascript/lib.js", "js")
	for link, target := range map[string]string{
		site + "greet/data/link.txt": "real.txt",                     // within the package: its content
		site + "greet/lib.js":        "/usr/share/javascript/lib.js", // absolute, within the package
		site + "greet/jquery.js":     "../../../../share/javascript/jquery/jquery.js",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	write("python3-helper/DEBIAN/control", "Package: python3-helper\nVersion: 0.5-1\nDepends: python3:any\n")
	write("python3-helper/"+sitePackages+"/helper.py", "x = 1\n")
	write("python3-helper/"+sitePackages+"/helper-0.5.dist-info/METADATA", "Metadata-Version: 2.1\nName: helper\nVersion: 0.5\n")
	write("python3-helper/"+sitePackages+"/helper-0.5.dist-info/RECORD", "stale\n")
	write(".packages", "python3-greet\npython3-helper\n")

	files, dropped, err := DebianWheels(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantDropped := []string{
		"python3-greet: greet/_speedups.cpython-311-x86_64-linux-gnu.so (compiled)",
		"python3-greet: greet/jquery.js (a link to ../../../../share/javascript/jquery/jquery.js, another package's file)",
	}
	if !slices.Equal(dropped, wantDropped) {
		t.Errorf("dropped %q, want %q", dropped, wantDropped)
	}
	page := string(files["simple/greet-pkg/index.html"])
	if !strings.Contains(page, `href="/files/greet_pkg-1.0-py3-none-any.whl#sha256=`) {
		t.Fatalf("project page: %q (files %v)", page, slices.Sorted(maps.Keys(files)))
	}
	got := unzip(t, files["files/greet_pkg-1.0-py3-none-any.whl"])
	wantNames := []string{
		"greet/__init__.py", "greet/data/link.txt", "greet/data/real.txt", "greet/lib.js",
		"greet_pkg-1.0.dist-info/METADATA", "greet_pkg-1.0.dist-info/WHEEL", "greet_pkg-1.0.dist-info/entry_points.txt", "greet_pkg-1.0.dist-info/RECORD",
	}
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, sortedCopy(wantNames)) {
		t.Fatalf("wheel files %q, want %q", names, sortedCopy(wantNames))
	}
	if got["greet/data/link.txt"] != "data" || got["greet/lib.js"] != "js" {
		t.Errorf("links within the package are their targets' content: %q %q", got["greet/data/link.txt"], got["greet/lib.js"])
	}
	meta := got["greet_pkg-1.0.dist-info/METADATA"]
	for _, want := range []string{"Name: Greet_Pkg\n", "Requires-Dist: speedy; extra == \"fast\"\n", "Requires-Dist: helper>=0.5\n", "Provides-Extra: fast\n", "\n\nGreets.\n"} {
		if !strings.Contains(meta, want) {
			t.Errorf("METADATA lacks %q:\n%s", want, meta)
		}
	}
	if !strings.Contains(got["greet_pkg-1.0.dist-info/WHEEL"], "Tag: py3-none-any\n") {
		t.Errorf("WHEEL: %s", got["greet_pkg-1.0.dist-info/WHEEL"])
	}
	// RECORD names every other file with its hash and size.
	record := strings.Split(strings.TrimSpace(got["greet_pkg-1.0.dist-info/RECORD"]), "\n")
	if len(record) != len(wantNames) {
		t.Fatalf("RECORD has %d lines for %d files:\n%s", len(record), len(wantNames), strings.Join(record, "\n"))
	}
	for _, line := range record {
		name, rest, _ := strings.Cut(line, ",")
		if name == "greet_pkg-1.0.dist-info/RECORD" {
			if rest != "," {
				t.Errorf("RECORD's own line: %q", line)
			}
			continue
		}
		sum := sha256.Sum256([]byte(got[name]))
		if want := fmt.Sprintf("sha256=%s,%d", base64.RawURLEncoding.EncodeToString(sum[:]), len(got[name])); rest != want {
			t.Errorf("RECORD %s: %q, want %q", name, rest, want)
		}
	}
	helper := unzip(t, files["files/helper-0.5-py3-none-any.whl"])
	if helper["helper.py"] != "x = 1\n" || !strings.Contains(helper["helper-0.5.dist-info/RECORD"], "helper.py,sha256=") {
		t.Errorf("helper wheel: %q", helper)
	}
	// The same packages make the same wheels (the index's hashes are stable).
	again, _, err := DebianWheels(dir)
	if err != nil || !bytes.Equal(again["files/helper-0.5-py3-none-any.whl"], files["files/helper-0.5-py3-none-any.whl"]) {
		t.Errorf("a second conversion differs: %v", err)
	}
}

func TestDebianWheelsRefusesAnIncompleteSet(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "python3-a", sitePackages)
	if err := os.MkdirAll(filepath.Join(site, "a-1.dist-info"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "python3-a", "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		filepath.Join(dir, "python3-a", "DEBIAN", "control"): "Package: python3-a\nVersion: 1-1\nDepends: python3-missing\n",
		filepath.Join(site, "a-1.dist-info", "METADATA"):     "Metadata-Version: 2.1\nName: a\nVersion: 1\n",
	} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := DebianWheels(dir); err == nil || !strings.Contains(err.Error(), "python3-missing") {
		t.Fatalf("err = %v, want one naming python3-missing", err)
	}
	if _, _, err := DebianWheels(t.TempDir()); err == nil || !strings.Contains(err.Error(), "scripts/debian-wheels.sh") {
		t.Fatalf("an empty directory: err = %v", err)
	}
}

func unzip(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = string(c)
	}
	return out
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
