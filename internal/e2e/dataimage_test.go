package e2e

import (
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/testenv"
)

// fontCacheProbe draws text with matplotlib (fonts looked up and
// rendered) and lists every matplotlib font cache (fontlist-*.json) in the
// places a run may write: /tmp (HOME) and the run directory.
const fontCacheProbe = `import io, os
import matplotlib
import matplotlib.pyplot as plt
fig = plt.figure()
fig.text(0.5, 0.5, 'runhost')
fig.savefig(io.BytesIO(), format='png')
plt.close(fig)
written = sorted({os.path.join(d, f) for top in ('/tmp', os.getcwd(), os.path.expanduser('~'))
                  for d, _, fs in os.walk(top) for f in fs if f.startswith('fontlist-')})
print('written:', written)
print('fonts:', len(matplotlib.font_manager.fontManager.ttflist) > 0)
`

// TestDataImageFontCachePrebuilt: on the data image matplotlib uses the
// font cache built into the image (images/python/3.11-data/setup): a fresh
// run and a fresh interpreter session import matplotlib.pyplot and draw
// text without writing a font cache of their own, and without matplotlib's
// warning about an unwritable cache directory.
func TestDataImageFontCachePrebuilt(t *testing.T) {
	h := startHost(t)
	testenv.RequireImages(t, h.Docker, "runhost/python:3.11-data")
	check := func(t *testing.T, stdout, stderr string) {
		t.Helper()
		if !strings.Contains(stdout, "written: []\n") || !strings.Contains(stdout, "fonts: True\n") {
			t.Errorf("stdout %q: want no font cache written and fonts known", stdout)
		}
		if strings.Contains(stderr, "Matplotlib") {
			t.Errorf("stderr %q: matplotlib warned", stderr)
		}
	}
	// A minute each: the first import of matplotlib takes seconds of CPU
	// on a loaded machine.
	t.Run("run", func(t *testing.T) {
		res := h.run("python", map[string]any{"version": "3.11-data", "code": fontCacheProbe, "timeout_ms": 60000})
		if res.ExitCode != 0 {
			t.Fatalf("exit %d: %s", res.ExitCode, res.Stderr)
		}
		check(t, res.Stdout, res.Stderr)
	})
	t.Run("interpreter", func(t *testing.T) {
		id := startInterpreter(t, h, "python", "3.11-data")
		res := h.cell(id, fontCacheProbe, "timeout_ms", 60000)
		if res.Error != nil {
			t.Fatalf("cell: %+v", res.Error)
		}
		check(t, res.Stdout, res.Stderr)
	})
}
