package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/docker/docker/client"
)

// BuilderImage is the builder image scripts/builder-image.sh makes from
// this checkout (`make images`): its tag hashes the recipe, so a test
// uses the builder of the code it tests even when the engine holds
// others (runhost/builder:latest may be another checkout's).
func BuilderImage() string {
	root := RepoRoot()
	files, _ := filepath.Glob(filepath.Join(root, "images", "builder", "*"))
	sort.Strings(files)
	h := sha256.New()
	for _, f := range append(files, filepath.Join(root, "scripts", "builder-image.sh")) {
		b, err := os.ReadFile(f)
		if err != nil {
			return "runhost/builder:latest"
		}
		h.Write(b)
	}
	return "runhost/builder:" + hex.EncodeToString(h.Sum(nil))[:12]
}

// RequireBuilder fails (in CI) or skips when the builder image is missing.
func RequireBuilder(t testing.TB, cli *client.Client) {
	t.Helper()
	RequireImages(t, cli, BuilderImage())
}
