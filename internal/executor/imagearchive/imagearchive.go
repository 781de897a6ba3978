// Package imagearchive streams the two image archives a sealed Dockerfile
// build passes through the host: a base image on its way from the engine
// to the builder (a `docker save` archive turned into an OCI image layout
// that BuildKit reads as a named context), and the built image on its way
// back (BuildKit's `type=docker` output, checked and re-tagged before the
// engine loads it). Both work in one pass over a stream, with bounded
// memory, and trust nothing in the archive they read.
package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrBadArchive marks an archive that is not what it should be.
var ErrBadArchive = errors.New("bad image archive")

// ErrTooLarge marks a built image over its size cap.
var ErrTooLarge = errors.New("image too large")

// Small files (manifests, configs, index) are kept in memory while they
// stream past, up to these bounds; layers only pass through.
const (
	maxSmallFile  = 4 << 20
	maxSmallTotal = 32 << 20
)

// LayoutIndex is the name of the OCI layout's index, written last: a
// layout whose index exists is complete.
const LayoutIndex = "index.json"

// savePrefix is where ToOCILayout puts the `docker save` files in the
// layout; blobs/sha256/<digest> are symbolic links into it.
const savePrefix = "save/"

// ToOCILayout reads a `docker save` archive of the image whose engine ID
// is id (sha256:<64 hex>) from r and writes to w a tar of an OCI image
// layout holding that image alone: index.json → manifest → config and
// layers. The archive's files are copied under save/, and each blob the
// manifest names is a link to its file, so nothing is buffered but the
// small JSON files. edit, if not nil, may change the image config (the
// result is stored as a new blob; layers are never changed). It returns
// the manifest's digest. The archive must hold a file whose digest is id
// (the config, or on an engine with the containerd store the manifest):
// the layout is the image the host checked, or an error.
func ToOCILayout(r io.Reader, w io.Writer, id string, edit func(config []byte) ([]byte, error)) (string, error) {
	want, ok := strings.CutPrefix(id, "sha256:")
	if !ok || len(want) != 64 {
		return "", fmt.Errorf("%w: image id %q is not sha256:<64 hex>", ErrBadArchive, id)
	}
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for _, dir := range []string{"blobs/", "blobs/sha256/", "ingest/", savePrefix} {
		if err := tw.WriteHeader(dirHeader(dir)); err != nil {
			return "", err
		}
	}
	files := map[string]fileInfo{} // by clean path in the save
	links := map[string]string{}   // symbolic links in the save: path → target path
	small := map[string][]byte{}
	var smallTotal int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadArchive, err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return "", err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := tw.WriteHeader(dirHeader(savePrefix + name + "/")); err != nil {
				return "", err
			}
		case tar.TypeSymlink:
			links[name] = path.Join(path.Dir(name), hdr.Linkname)
		case tar.TypeReg:
			keep := hdr.Size <= maxSmallFile && smallTotal+hdr.Size <= maxSmallTotal
			info, content, err := copyFile(tw, tr, savePrefix+name, hdr.Size, keep)
			if err != nil {
				return "", err
			}
			files[name] = info
			if keep {
				small[name] = content
				smallTotal += hdr.Size
			}
		default:
			// Hard links, devices, FIFOs: never part of a save archive.
			return "", fmt.Errorf("%w: %s is not a regular file, directory or symbolic link", ErrBadArchive, hdr.Name)
		}
	}

	resolve := func(name string) (string, error) {
		name, err := cleanName(name)
		for i := 0; err == nil && i < 16; i++ {
			if _, ok := files[name]; ok {
				return name, nil
			}
			target, ok := links[name]
			if !ok {
				break
			}
			name, err = cleanName(target)
		}
		return "", fmt.Errorf("%w: %s is not in the archive", ErrBadArchive, name)
	}
	var manifests []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(small["manifest.json"], &manifests); err != nil || len(manifests) != 1 {
		return "", fmt.Errorf("%w: manifest.json must describe exactly one image", ErrBadArchive)
	}
	found := false
	for _, f := range files {
		found = found || f.digest == want
	}
	if !found {
		return "", fmt.Errorf("%w: the archive does not hold image %s", ErrBadArchive, id)
	}
	m := manifests[0]
	cfgPath, err := resolve(m.Config)
	if err != nil {
		return "", err
	}
	config, ok := small[cfgPath]
	if !ok {
		return "", fmt.Errorf("%w: image config %s missing or too large", ErrBadArchive, m.Config)
	}
	if edit != nil {
		if config, err = edit(config); err != nil {
			return "", err
		}
	}
	manifest := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digestOf(config), Size: int64(len(config))},
	}
	manifest.SchemaVersion = 2
	linked := map[string]bool{}
	for _, l := range m.Layers {
		p, err := resolve(l)
		if err != nil {
			return "", err
		}
		f := files[p]
		manifest.Layers = append(manifest.Layers, ocispec.Descriptor{MediaType: f.mediaType(), Digest: digest.NewDigestFromEncoded(digest.SHA256, f.digest), Size: f.size})
		if linked[f.digest] {
			continue
		}
		linked[f.digest] = true
		if err := tw.WriteHeader(&tar.Header{
			Name: "blobs/sha256/" + f.digest, Typeflag: tar.TypeSymlink,
			Linkname: "../../" + savePrefix + p, Mode: 0o777, ModTime: epoch,
		}); err != nil {
			return "", err
		}
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return "", err
	}
	index := ocispec.Index{
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digestOf(manifestJSON), Size: int64(len(manifestJSON))}},
	}
	index.SchemaVersion = 2
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return "", err
	}
	if !linked[hexOf(config)] {
		if err := writeFile(tw, "blobs/sha256/"+hexOf(config), config); err != nil {
			return "", err
		}
	}
	for _, f := range []struct {
		name    string
		content []byte
	}{
		{"blobs/sha256/" + hexOf(manifestJSON), manifestJSON},
		{ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{LayoutIndex, indexJSON},
	} {
		if err := writeFile(tw, f.name, f.content); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return string(digestOf(manifestJSON)), nil
}

// ManifestDigest reads the one manifest digest of a layout's index.json,
// as ToOCILayout wrote it.
func ManifestDigest(indexJSON []byte) (string, error) {
	var index ocispec.Index
	if err := json.Unmarshal(indexJSON, &index); err != nil || len(index.Manifests) != 1 {
		return "", fmt.Errorf("%w: index.json must name exactly one manifest", ErrBadArchive)
	}
	d := index.Manifests[0].Digest
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: index.json: %v", ErrBadArchive, err)
	}
	return string(d), nil
}

// RunAsRoot is an edit for ToOCILayout: the image config's default user is
// cleared, so build steps run as root inside the build's sandbox (the
// runtime images set uid 1000, under which `RUN echo hi > /greeting`
// fails). Runs never use the image's user: the policy sets theirs.
func RunAsRoot(config []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(config, &top); err != nil {
		return nil, fmt.Errorf("%w: image config: %v", ErrBadArchive, err)
	}
	var cfg map[string]json.RawMessage
	if raw, ok := top["config"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("%w: image config: %v", ErrBadArchive, err)
		}
	}
	if _, ok := cfg["User"]; !ok {
		return config, nil
	}
	delete(cfg, "User")
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	top["config"] = raw
	return json.Marshal(top)
}

// fileInfo is what ToOCILayout learnt of a file while copying it.
type fileInfo struct {
	digest string // hex
	size   int64
	head   []byte // first bytes, for the compression's magic number
}

// mediaType is the OCI layer media type of a layer file, by its magic
// number: docker save writes uncompressed layers; an engine on the
// containerd store may keep them as pulled.
func (f fileInfo) mediaType() string {
	switch {
	case bytes.HasPrefix(f.head, []byte{0x1f, 0x8b}):
		return ocispec.MediaTypeImageLayerGzip
	case bytes.HasPrefix(f.head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// copyFile copies one file of size bytes from r into tw as name, hashing
// it, and keeps its content if keep.
func copyFile(tw *tar.Writer, r io.Reader, name string, size int64, keep bool) (fileInfo, []byte, error) {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: size, Mode: 0o644, ModTime: epoch}); err != nil {
		return fileInfo{}, nil, err
	}
	h := sha256.New()
	head := &headWriter{max: 8}
	var kept bytes.Buffer
	dst := []io.Writer{tw, h, head}
	if keep {
		dst = append(dst, &kept)
	}
	if _, err := io.CopyN(io.MultiWriter(dst...), r, size); err != nil {
		return fileInfo{}, nil, fmt.Errorf("%w: %s: %v", ErrBadArchive, name, err)
	}
	return fileInfo{digest: hex.EncodeToString(h.Sum(nil)), size: size, head: head.b}, kept.Bytes(), nil
}

type headWriter struct {
	max int
	b   []byte
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// cleanName refuses absolute names and names that leave the archive.
func cleanName(name string) (string, error) {
	c := path.Clean(strings.TrimPrefix(name, "./"))
	if c == "." || path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: unsafe name %q", ErrBadArchive, name)
	}
	return c, nil
}

var epoch = time.Unix(0, 0)

func dirHeader(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}
}

func writeFile(tw *tar.Writer, name string, content []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(content)), Mode: 0o644, ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(content)
	return err
}

func hexOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }
