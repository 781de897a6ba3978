package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// images/images.sh against a stand-in docker command that remembers the
// recipe label of the last build: an image is rebuilt when a file of its
// directory changes (its Dockerfile, or the setup script run in the image,
// which prebuilds caches such as the data image's matplotlib fonts), and
// only then.
func TestImagesScriptRebuildsOnRecipeChange(t *testing.T) {
	bin, dir := t.TempDir(), t.TempDir()
	calls, label := filepath.Join(bin, "calls"), filepath.Join(bin, "label")
	fake := "#!/bin/sh\necho \"$@\" >> " + calls + "\n" +
		"case $1 in\n" +
		"  image) cat " + label + " 2>/dev/null || exit 1;;\n" + // image inspect: the recipe label
		"  build) echo \"${4#runhost.recipe=}\" > " + label + ";;\n" + // build -q --label runhost.recipe=R ...
		"esac\n"
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "docker"), fake)
	list := filepath.Join(bin, "images.txt")
	write(list, "runhost.test/image:1 "+dir+" bookworm bash\n")
	write(filepath.Join(dir, "Dockerfile"), "FROM debian:bookworm-slim\n")

	for _, step := range []struct {
		name    string
		change  func()
		rebuild bool
	}{
		{"first build", func() {}, true},
		{"nothing changed", func() {}, false},
		{"a setup script added", func() { write(filepath.Join(dir, "setup"), "#!/bin/sh\necho one\n") }, true},
		{"nothing changed again", func() {}, false},
		{"the setup script changed", func() { write(filepath.Join(dir, "setup"), "#!/bin/sh\necho two\n") }, true},
		{"the Dockerfile changed", func() { write(filepath.Join(dir, "Dockerfile"), "FROM debian:trixie-slim\n") }, true},
	} {
		step.change()
		_ = os.Remove(calls)
		cmd := exec.Command(filepath.Join(repoRoot(t), "images", "images.sh"))
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "IMAGES_LIST="+list,
			"RUNHOST_IMAGE_SOURCE=registry", "RUNHOST_IMAGE_CACHE="+filepath.Join(bin, "cache"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", step.name, err, out)
		}
		b, _ := os.ReadFile(calls)
		if built := strings.Contains(string(b), "build -q"); built != step.rebuild {
			t.Errorf("%s: built %v, want %v:\n%s", step.name, built, step.rebuild, out)
		}
	}
}
