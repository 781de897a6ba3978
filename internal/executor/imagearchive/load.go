package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
)

// Loadable copies BuildKit's `type=docker` output from r to w as an
// archive the engine may load, and checks what it holds:
//   - at most maxBytes are read (more is ErrTooLarge);
//   - only regular files and directories pass;
//   - the one image it holds is tagged ref and nothing else: manifest.json's
//     tags are replaced, and the files that could name or tag images
//     otherwise (index.json, oci-layout, repositories) are dropped;
//   - every layer the image config names is in the archive with exactly
//     that content (its sha256 is the layer's diff ID), or is one of
//     reusable: the layers of the pinned bases, which the engine already
//     has and the builder may leave out. An engine reuses any layer it
//     holds for a diff ID without reading the archive's copy, so without
//     this a subverted builder could name another image's layers and get
//     them.
//
// The archive's end marker is not written: the engine reads the whole
// archive before it loads anything, so an archive without its end never
// loads. seal writes the end once the caller knows the build succeeded;
// a caller that never calls it (the build failed, the image was too
// large) leaves the engine with nothing.
func Loadable(r io.Reader, w io.Writer, ref string, maxBytes int64, reusable map[string]bool) (seal func() error, err error) {
	counted := &capReader{r: r, left: maxBytes, max: maxBytes}
	tr := tar.NewReader(counted)
	tw := tar.NewWriter(w)
	files := map[string]string{} // clean name → sha256 hex of its content
	small := map[string][]byte{}
	var smallTotal int64
	var manifests [][]byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, counted.explain(err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return nil, err
		}
		switch {
		case hdr.Typeflag == tar.TypeDir:
			if err := tw.WriteHeader(dirHeader(name + "/")); err != nil {
				return nil, err
			}
		case hdr.Typeflag != tar.TypeReg:
			return nil, fmt.Errorf("%w: %s is not a regular file or directory", ErrBadArchive, hdr.Name)
		case name == "index.json" || name == "oci-layout" || name == "repositories":
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return nil, counted.explain(err)
			}
		case name == "manifest.json":
			// Kept, and written last, once what it names is checked.
			b, err := io.ReadAll(io.LimitReader(tr, maxSmallFile+1))
			if err != nil {
				return nil, counted.explain(err)
			}
			if len(b) > maxSmallFile {
				return nil, fmt.Errorf("%w: manifest.json is over %d bytes", ErrBadArchive, maxSmallFile)
			}
			manifests = append(manifests, b)
		default:
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: hdr.Size, Mode: 0o644, ModTime: epoch}); err != nil {
				return nil, err
			}
			keep := hdr.Size <= maxSmallFile && smallTotal+hdr.Size <= maxSmallTotal
			h := sha256.New()
			var kept bytes.Buffer
			dst := []io.Writer{h}
			if keep {
				dst = append(dst, &kept)
			}
			out := &writeErr{w: tw}
			if _, err := io.Copy(io.MultiWriter(append(dst, out)...), tr); err != nil {
				if out.err != nil {
					return nil, fmt.Errorf("copy %s: %w", name, err)
				}
				return nil, counted.explain(err)
			}
			files[name] = hex.EncodeToString(h.Sum(nil))
			if keep {
				small[name] = kept.Bytes()
				smallTotal += hdr.Size
			}
		}
	}
	if len(manifests) != 1 {
		return nil, fmt.Errorf("%w: the build's output has %d manifest.json files, want 1", ErrBadArchive, len(manifests))
	}
	manifest, err := checked(manifests[0], ref, files, small, reusable)
	if err != nil {
		return nil, err
	}
	if err := writeFile(tw, "manifest.json", manifest); err != nil {
		return nil, err
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	return tw.Close, nil
}

// checked verifies a docker-save manifest.json against the files that came
// with it (see Loadable) and returns it tagged ref alone.
func checked(manifestJSON []byte, ref string, files map[string]string, small map[string][]byte, reusable map[string]bool) ([]byte, error) {
	var images []map[string]json.RawMessage
	if err := json.Unmarshal(manifestJSON, &images); err != nil || len(images) != 1 {
		return nil, fmt.Errorf("%w: manifest.json must describe exactly one image", ErrBadArchive)
	}
	img := images[0]
	var configPath string
	var layers []string
	if err := json.Unmarshal(img["Config"], &configPath); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: no Config", ErrBadArchive)
	}
	if err := json.Unmarshal(img["Layers"], &layers); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: no Layers", ErrBadArchive)
	}
	if src, ok := img["LayerSources"]; ok && string(src) != "null" && string(src) != "{}" {
		return nil, fmt.Errorf("%w: manifest.json names foreign layer sources", ErrBadArchive)
	}
	p, err := cleanName(configPath)
	if err != nil {
		return nil, err
	}
	config, ok := small[p]
	if !ok {
		return nil, fmt.Errorf("%w: the image config %s is not in the archive", ErrBadArchive, configPath)
	}
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("%w: image config: %v", ErrBadArchive, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("%w: the image config names %d layers, manifest.json %d", ErrBadArchive, len(cfg.RootFS.DiffIDs), len(layers))
	}
	for i, l := range layers {
		want := cfg.RootFS.DiffIDs[i]
		p, err := cleanName(l)
		if err != nil {
			return nil, err
		}
		got, present := files[p]
		switch {
		case present && "sha256:"+got != want:
			return nil, fmt.Errorf("%w: layer %s does not hold the content its config names (%s)", ErrBadArchive, l, want)
		case !present && !reusable[want]:
			return nil, fmt.Errorf("%w: the image names layer %s without carrying it, and it is not a layer of a pinned base", ErrBadArchive, want)
		}
	}
	tags, _ := json.Marshal([]string{ref})
	img["RepoTags"] = tags
	return json.Marshal(images)
}

// capReader reads at most max bytes; beyond, it fails with ErrTooLarge.
type capReader struct {
	r         io.Reader
	left, max int64
	over      bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a stream at the cap from one over it.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			c.over = true
			return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.max)
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// explain turns an error reading the archive into ErrTooLarge when the
// cap was the cause, else ErrBadArchive.
func (c *capReader) explain(err error) error {
	if c.over {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.max)
	}
	return fmt.Errorf("%w: %v", ErrBadArchive, err)
}

// writeErr remembers its writer's error, to tell it from the reader's.
type writeErr struct {
	w   io.Writer
	err error
}

func (w *writeErr) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}
