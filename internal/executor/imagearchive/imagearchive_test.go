package imagearchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type entry struct {
	name     string
	content  []byte
	typeflag byte
	link     string
}

func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typeflag, Linkname: e.link}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func layerTar(t *testing.T, file, content string) []byte {
	return archive(t, entry{name: file, content: []byte(content)})
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var config = []byte(`{"architecture":"amd64","os":"linux","config":{"User":"1000:1000","Env":["PATH=/usr/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}`)

// classicSave is a `docker save` archive as Docker 20.10 writes it.
func classicSave(t *testing.T, layers ...[]byte) []byte {
	entries := []entry{}
	var paths []string
	for i, l := range layers {
		dir := strings.Repeat(string(rune('a'+i)), 64)
		entries = append(entries, entry{name: dir + "/", typeflag: tar.TypeDir},
			entry{name: dir + "/VERSION", content: []byte("1.0")},
			entry{name: dir + "/layer.tar", content: l})
		paths = append(paths, dir+"/layer.tar")
	}
	entries = append(entries,
		entry{name: sum(config) + ".json", content: config},
		entry{name: "manifest.json", content: jsonOf(t, []map[string]any{{"Config": sum(config) + ".json", "RepoTags": nil, "Layers": paths}})},
		entry{name: "repositories", content: []byte("{}")})
	return archive(t, entries...)
}

// blobSave is a save archive as Docker 25+ writes it: blobs by digest, and
// the legacy layer paths as links to them.
func blobSave(t *testing.T, layers ...[]byte) []byte {
	entries := []entry{{name: "blobs/", typeflag: tar.TypeDir}, {name: "blobs/sha256/", typeflag: tar.TypeDir}}
	var paths []string
	for i, l := range layers {
		entries = append(entries, entry{name: "blobs/sha256/" + sum(l), content: l})
		dir := strings.Repeat(string(rune('a'+i)), 64)
		entries = append(entries, entry{name: dir + "/layer.tar", typeflag: tar.TypeSymlink, link: "../blobs/sha256/" + sum(l)})
		paths = append(paths, dir+"/layer.tar")
	}
	entries = append(entries,
		entry{name: "blobs/sha256/" + sum(config), content: config},
		entry{name: "manifest.json", content: jsonOf(t, []map[string]any{{"Config": "blobs/sha256/" + sum(config), "Layers": paths}})})
	return archive(t, entries...)
}

// extract unpacks a tar into a directory (links included) and returns it.
func extract(t *testing.T, b []byte) string {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, hdr.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, p)
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, data, 0o644)
			}
		default:
			t.Fatalf("unexpected entry %s type %c", hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func readBlob(t *testing.T, dir string, d string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if "sha256:"+sum(b) != d {
		t.Fatalf("blob %s holds content of digest %s", d, sum(b))
	}
	return b
}

func TestToOCILayout(t *testing.T) {
	layer1 := layerTar(t, "etc/hostname", "one")
	layer2 := layerTar(t, "etc/motd", "two")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(layer2)
	_ = zw.Close()
	id := "sha256:" + sum(config)
	for _, tc := range []struct {
		name   string
		save   []byte
		layers [][]byte
		types  []string
	}{
		{"docker 20.10", classicSave(t, layer1, layer2), [][]byte{layer1, layer2}, []string{ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayer}},
		{"docker 25 blobs", blobSave(t, layer1, layer2), [][]byte{layer1, layer2}, []string{ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayer}},
		{"a layer twice", classicSave(t, layer1, layer1), [][]byte{layer1, layer1}, []string{ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayer}},
		{"compressed layer", blobSave(t, layer1, gz.Bytes()), [][]byte{layer1, gz.Bytes()}, []string{ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			manifestDigest, err := ToOCILayout(bytes.NewReader(tc.save), &out, id, RunAsRoot)
			if err != nil {
				t.Fatal(err)
			}
			dir := extract(t, out.Bytes())
			indexJSON, err := os.ReadFile(filepath.Join(dir, LayoutIndex))
			if err != nil {
				t.Fatal(err)
			}
			if d, err := ManifestDigest(indexJSON); err != nil || d != manifestDigest {
				t.Fatalf("index names %s (%v), ToOCILayout returned %s", d, err, manifestDigest)
			}
			if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); err != nil {
				t.Fatal(err)
			}
			var m ocispec.Manifest
			if err := json.Unmarshal(readBlob(t, dir, manifestDigest), &m); err != nil {
				t.Fatal(err)
			}
			var cfg ocispec.Image
			if err := json.Unmarshal(readBlob(t, dir, string(m.Config.Digest)), &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.Config.User != "" || len(cfg.Config.Cmd) != 1 || cfg.Config.Env[0] != "PATH=/usr/bin" {
				t.Errorf("config after RunAsRoot: %+v", cfg.Config)
			}
			if len(m.Layers) != len(tc.layers) {
				t.Fatalf("manifest has %d layers, want %d", len(m.Layers), len(tc.layers))
			}
			for i, l := range m.Layers {
				if got := readBlob(t, dir, string(l.Digest)); !bytes.Equal(got, tc.layers[i]) || l.Size != int64(len(got)) {
					t.Errorf("layer %d: wrong content or size %d", i, l.Size)
				}
				if l.MediaType != tc.types[i] {
					t.Errorf("layer %d: media type %s, want %s", i, l.MediaType, tc.types[i])
				}
			}
		})
	}
}

func TestToOCILayoutRefuses(t *testing.T) {
	layer := layerTar(t, "f", "x")
	id := "sha256:" + sum(config)
	manifest := func(v any) entry { return entry{name: "manifest.json", content: jsonOf(t, v)} }
	cfg := entry{name: sum(config) + ".json", content: config}
	one := []map[string]any{{"Config": sum(config) + ".json", "Layers": []string{"l/layer.tar"}}}
	for _, tc := range []struct {
		name string
		id   string
		save []byte
	}{
		{"another image", "sha256:" + strings.Repeat("0", 64), classicSave(t, layer)},
		{"an id prefix", "sha256:" + sum(config)[:12], classicSave(t, layer)},
		{"no manifest", id, archive(t, cfg, entry{name: "l/layer.tar", content: layer})},
		{"two images", id, archive(t, cfg, entry{name: "l/layer.tar", content: layer}, manifest(append(one, one[0])))},
		{"a missing layer", id, archive(t, cfg, manifest(one))},
		{"a name leaving the archive", id, archive(t, cfg, entry{name: "../l/layer.tar", content: layer}, manifest(one))},
		{"an absolute name", id, archive(t, cfg, entry{name: "/l/layer.tar", content: layer}, manifest(one))},
		{"a hard link", id, archive(t, cfg, entry{name: "l/layer.tar", typeflag: tar.TypeLink, link: "x"}, manifest(one))},
		{"a link loop", id, archive(t, cfg, entry{name: "l/layer.tar", typeflag: tar.TypeSymlink, link: "layer.tar"}, manifest(one))},
		{"not a tar", id, []byte("not a tar at all, just bytes that go on for a while...........")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ToOCILayout(bytes.NewReader(tc.save), io.Discard, tc.id, nil)
			if !errors.Is(err, ErrBadArchive) {
				t.Fatalf("got %v, want ErrBadArchive", err)
			}
		})
	}
}

func TestRunAsRoot(t *testing.T) {
	for _, tc := range []struct{ in, user string }{
		{`{"config":{"User":"1000:1000","Cmd":["x"]}}`, ""},
		{`{"config":{"Cmd":["x"]}}`, ""},
		{`{"config":null}`, ""},
		{`{}`, ""},
	} {
		out, err := RunAsRoot([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		var img ocispec.Image
		if err := json.Unmarshal(out, &img); err != nil || img.Config.User != tc.user {
			t.Errorf("%s → %s (%v)", tc.in, out, err)
		}
	}
	if _, err := RunAsRoot([]byte(`{"config":`)); !errors.Is(err, ErrBadArchive) {
		t.Errorf("broken config: %v", err)
	}
}

// dockerOutput is BuildKit's type=docker output, as containerd's archive
// exporter writes it (names sorted): a base layer and a new one, or only
// the new one when the base's is left out.
func dockerOutput(t *testing.T, withBase bool, tags ...string) []byte {
	t.Helper()
	base, layer := layerTar(t, "etc/os-release", "base"), layerTar(t, "greeting", "hi")
	cfg := jsonOf(t, map[string]any{"config": map[string]any{"Cmd": []string{"sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + sum(base), "sha256:" + sum(layer)}}})
	entries := []entry{
		{name: "blobs/", typeflag: tar.TypeDir},
		{name: "blobs/sha256/", typeflag: tar.TypeDir},
	}
	if withBase {
		entries = append(entries, entry{name: "blobs/sha256/" + sum(base), content: base})
	}
	entries = append(entries,
		entry{name: "blobs/sha256/" + sum(layer), content: layer},
		entry{name: "blobs/sha256/" + sum(cfg), content: cfg},
		entry{name: "index.json", content: []byte(`{"schemaVersion":2,"manifests":[{"annotations":{"io.containerd.image.name":"docker.io/runhost/python:3.11"}}]}`)},
		entry{name: "manifest.json", content: jsonOf(t, []map[string]any{{"Config": "blobs/sha256/" + sum(cfg), "RepoTags": tags,
			"Layers": []string{"blobs/sha256/" + sum(base), "blobs/sha256/" + sum(layer)}}})},
		entry{name: "oci-layout", content: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	)
	return archive(t, entries...)
}

// baseLayer is dockerOutput's base layer, as a diff ID.
func baseLayer(t *testing.T) map[string]bool {
	return map[string]bool{"sha256:" + sum(layerTar(t, "etc/os-release", "base")): true}
}

func TestLoadable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		withBase bool
	}{{"the whole image", true}, {"without the base layer the engine has", false}} {
		t.Run(tc.name, func(t *testing.T) {
			in := dockerOutput(t, tc.withBase, "runhost/python:3.11", "runhost/egress:x")
			var out bytes.Buffer
			seal, err := Loadable(bytes.NewReader(in), &out, "runhost/build:abc", int64(len(in)), baseLayer(t))
			if err != nil {
				t.Fatal(err)
			}
			unsealed := out.Len()
			if err := seal(); err != nil {
				t.Fatal(err)
			}
			if out.Len() <= unsealed {
				t.Error("seal wrote no end marker")
			}
			names := map[string][]byte{}
			tr := tar.NewReader(&out)
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				names[hdr.Name], _ = io.ReadAll(tr)
			}
			for _, dropped := range []string{"index.json", "oci-layout"} {
				if _, ok := names[dropped]; ok {
					t.Errorf("%s passed; it can name images", dropped)
				}
			}
			var m []struct{ RepoTags []string }
			if err := json.Unmarshal(names["manifest.json"], &m); err != nil || len(m) != 1 || strings.Join(m[0].RepoTags, ",") != "runhost/build:abc" {
				t.Errorf("manifest.json: %s", names["manifest.json"])
			}
			if len(names) != 5+btoi(tc.withBase) { // two directories, the layers, config, manifest.json
				t.Errorf("passed %d entries", len(names))
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestLoadableRefuses(t *testing.T) {
	good := dockerOutput(t, true)
	layer := layerTar(t, "greeting", "hi")
	cfg := func(diffIDs ...string) []byte {
		return jsonOf(t, map[string]any{"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	}
	image := func(cfg []byte, manifest map[string]any, blobs ...[]byte) []byte {
		entries := []entry{{name: "blobs/sha256/" + sum(cfg), content: cfg}}
		for _, b := range blobs {
			entries = append(entries, entry{name: "blobs/sha256/" + sum(b), content: b})
		}
		manifest["Config"] = "blobs/sha256/" + sum(cfg)
		return archive(t, append(entries, entry{name: "manifest.json", content: jsonOf(t, []map[string]any{manifest})})...)
	}
	other := "sha256:" + strings.Repeat("e", 64)
	for _, tc := range []struct {
		name string
		in   []byte
		max  int64
		want error
	}{
		{"over the cap", good, int64(len(good)) - 2048, ErrTooLarge},
		{"a symbolic link", archive(t, entry{name: "blobs/x", typeflag: tar.TypeSymlink, link: "/etc/passwd"}), 1 << 20, ErrBadArchive},
		{"a name leaving the archive", archive(t, entry{name: "../x", content: []byte("x")}), 1 << 20, ErrBadArchive},
		{"no manifest", archive(t, entry{name: "blobs/x", content: []byte("x")}), 1 << 20, ErrBadArchive},
		{"two manifests", archive(t, entry{name: "manifest.json", content: []byte(`[{}]`)}, entry{name: "manifest.json", content: []byte(`[{}]`)}), 1 << 20, ErrBadArchive},
		{"two images", archive(t, entry{name: "manifest.json", content: []byte(`[{},{}]`)}), 1 << 20, ErrBadArchive},
		{"truncated", good[:len(good)/2], 1 << 20, ErrBadArchive},
		{"truncated in a file", good[:512+100], 1 << 20, ErrBadArchive},
		{"a layer of another image, left out", image(cfg(other), map[string]any{"Layers": []string{"blobs/sha256/" + other[7:]}}), 1 << 20, ErrBadArchive},
		{"a layer whose content is not its diff ID", image(cfg(other), map[string]any{"Layers": []string{"blobs/sha256/" + sum(layer)}}, layer), 1 << 20, ErrBadArchive},
		{"more layers than the config names", image(cfg(), map[string]any{"Layers": []string{"blobs/sha256/" + sum(layer)}}, layer), 1 << 20, ErrBadArchive},
		{"foreign layer sources", image(cfg("sha256:"+sum(layer)), map[string]any{"Layers": []string{"blobs/sha256/" + sum(layer)},
			"LayerSources": map[string]any{"sha256:" + sum(layer): map[string]any{"urls": []string{"http://127.0.0.1/x"}}}}, layer), 1 << 20, ErrBadArchive},
		{"no config", archive(t, entry{name: "manifest.json", content: []byte(`[{"Config":"blobs/sha256/none","Layers":[]}]`)}), 1 << 20, ErrBadArchive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Loadable(bytes.NewReader(tc.in), io.Discard, "runhost/build:abc", tc.max, baseLayer(t))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// A base layer left out is refused when it is not a pinned base's.
	if _, err := Loadable(bytes.NewReader(dockerOutput(t, false)), io.Discard, "r", 1<<20, nil); !errors.Is(err, ErrBadArchive) {
		t.Errorf("a base layer left out without being reusable: %v", err)
	}
}
