package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/policy"
)

// The images `make images` pulls are the ones the default allow-list
// accepts.
func TestSeedImagesList(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "images", "seed-images.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			listed = append(listed, line)
		}
	}
	if !slices.Equal(listed, policy.SeedImages) {
		t.Errorf("images/seed-images.txt lists %v, policy.SeedImages %v", listed, policy.SeedImages)
	}
}

// scripts/seed-images.sh against a stand-in docker command: it pulls what
// is missing where the registry answers, and where none does it stops
// after one probe and still succeeds.
func TestSeedImagesScript(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pull     string // the stand-in's exit status for docker pull
		wantLog  string
		wantPull int
	}{
		{"registry answers", "0", "ubuntu:22.04: pulled", 3},
		{"no registry", "1", "no registry answers; not pulled: python:3.11-slim node:20-alpine ubuntu:22.04", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			calls := filepath.Join(bin, "calls")
			fake := "#!/bin/sh\necho \"$@\" >> " + calls + "\ncase $1 in image) exit 1;; pull) exit " + tc.pull + ";; esac\n"
			if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "seed-images.sh"))
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.wantLog) {
				t.Fatalf("%v: %s", err, out)
			}
			b, _ := os.ReadFile(calls)
			if n := strings.Count(string(b), "pull -q"); n != tc.wantPull {
				t.Errorf("%d pulls, want %d:\n%s", n, tc.wantPull, b)
			}
		})
	}
}
