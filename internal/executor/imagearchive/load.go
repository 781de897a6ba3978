package imagearchive

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
)

// Loadable copies BuildKit's `type=docker` output from r to w as an
// archive the engine may load: at most maxBytes of it are read (more is
// ErrTooLarge), only regular files and directories pass, and the one
// image it holds is tagged ref and nothing else — manifest.json's tags
// are replaced, and the files that could name or tag images otherwise
// (index.json, oci-layout, repositories) are dropped, so a compromised
// builder cannot retag another image on the engine.
//
// The archive's end marker is not written: the engine reads the whole
// archive before it loads anything, so an archive without its end never
// loads. seal writes the end once the caller knows the build succeeded;
// a caller that never calls it (the build failed, the image was too
// large) leaves the engine with nothing.
func Loadable(r io.Reader, w io.Writer, ref string, maxBytes int64) (seal func() error, err error) {
	counted := &capReader{r: r, left: maxBytes, max: maxBytes}
	tr := tar.NewReader(counted)
	tw := tar.NewWriter(w)
	manifests := 0
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
			manifests++
			b, err := io.ReadAll(io.LimitReader(tr, maxSmallFile+1))
			if err != nil {
				return nil, counted.explain(err)
			}
			if len(b) > maxSmallFile {
				return nil, fmt.Errorf("%w: manifest.json is over %d bytes", ErrBadArchive, maxSmallFile)
			}
			if b, err = retag(b, ref); err != nil {
				return nil, err
			}
			if err := writeFile(tw, name, b); err != nil {
				return nil, err
			}
		default:
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: hdr.Size, Mode: 0o644, ModTime: epoch}); err != nil {
				return nil, err
			}
			out := &writeErr{w: tw}
			if _, err := io.Copy(out, tr); err != nil {
				if out.err != nil {
					return nil, fmt.Errorf("copy %s: %w", name, err)
				}
				return nil, counted.explain(err)
			}
		}
	}
	if manifests != 1 {
		return nil, fmt.Errorf("%w: the build's output has %d manifest.json files, want 1", ErrBadArchive, manifests)
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	return tw.Close, nil
}

// retag sets the one image's tags in a docker-save manifest.json to ref.
func retag(manifestJSON []byte, ref string) ([]byte, error) {
	var images []map[string]json.RawMessage
	if err := json.Unmarshal(manifestJSON, &images); err != nil || len(images) != 1 {
		return nil, fmt.Errorf("%w: manifest.json must describe exactly one image", ErrBadArchive)
	}
	tags, _ := json.Marshal([]string{ref})
	images[0]["RepoTags"] = tags
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
