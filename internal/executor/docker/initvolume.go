package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/runhost/runhost/internal/executor/helperimage"
)

func newInitVolume(binary []byte) *initVolume {
	sum := sha256.Sum256(binary)
	return &initVolume{binary: binary, name: "runhost-init-" + hex.EncodeToString(sum[:6])}
}

// readyMarker is written after the binary, so a half-filled volume is never
// mistaken for a ready one.
const readyMarker = "ready"

// ensure makes sure the volume exists and holds the init binary. It is cheap
// once done; after a failure the next run tries again.
func (v *initVolume) ensure(ctx context.Context, e engine, labels map[string]string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ready {
		return nil
	}
	if len(v.binary) == 0 {
		return errors.New("init binary is empty: build runhost-init (make build) or set RUNHOST_INIT_PATH")
	}
	if err := v.fill(ctx, e, labels); err != nil {
		return fmt.Errorf("prepare init volume %s: %w", v.name, err)
	}
	v.ready = true
	return nil
}

func (v *initVolume) invalidate() {
	v.mu.Lock()
	v.ready = false
	v.mu.Unlock()
}

func (v *initVolume) fill(ctx context.Context, e engine, labels map[string]string) error {
	volLabels := map[string]string{LabelManaged: "true"}
	if _, err := e.VolumeCreate(ctx, volume.CreateOptions{Name: v.name, Labels: volLabels}); err != nil {
		return engineError("create volume", err)
	}
	// A container is needed to reach the volume. It is never started; its
	// image is a one-file image of the init binary, imported once.
	helperImage := helperimage.Init(v.binary)
	if _, err := e.ImageInspect(ctx, helperImage); cerrdefs.IsNotFound(err) {
		if err := importImage(ctx, e, helperImage, "init", v.binary); err != nil {
			return err
		}
	} else if err != nil {
		return engineError("inspect image", err)
	}
	helperID, err := createContainer(ctx, e, &container.Config{
		Image:  helperImage,
		Cmd:    []string{"/init"},
		Labels: labels,
	}, &container.HostConfig{
		NetworkMode: "none",
		Mounts: []mount.Mount{{
			Type: mount.TypeVolume, Source: v.name, Target: initDir,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true},
		}},
	}, uniqueName("runhost-init-helper-"))
	if err != nil {
		return engineError("create helper container", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
		defer cancel()
		_ = e.ContainerRemove(rctx, helperID, container.RemoveOptions{Force: true})
	}()

	if _, err := e.ContainerStatPath(ctx, helperID, initDir+"/"+readyMarker); err == nil {
		return nil // filled earlier, by this host or another of the same version
	}
	if err := e.CopyToContainer(ctx, helperID, initDir, tarOf("init", v.binary, 0o755), container.CopyToContainerOptions{}); err != nil {
		return engineError("copy init binary", err)
	}
	if err := e.CopyToContainer(ctx, helperID, initDir, tarOf(readyMarker, nil, 0o644), container.CopyToContainerOptions{}); err != nil {
		return engineError("mark init volume ready", err)
	}
	return nil
}

// importImage imports an image holding one executable, /name.
func importImage(ctx context.Context, e engine, ref, name string, binary []byte) error {
	rc, err := e.ImageImport(ctx, image.ImportSource{Source: tarOf(name, binary, 0o755), SourceName: "-"}, ref,
		image.ImportOptions{Changes: []string{"LABEL " + LabelManaged + "=true"}})
	if err != nil {
		return engineError("import image "+ref, err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// tarOf returns a tar archive holding one file owned by root.
func tarOf(name string, content []byte, mode int64) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	_, _ = tw.Write(content)
	_ = tw.Close()
	return &buf
}

// importDirImage imports an image holding one empty directory owned by
// uid:gid.
func importDirImage(ctx context.Context, e engine, ref, dir, uid, gid string) error {
	u, _ := strconv.Atoi(uid)
	g, _ := strconv.Atoi(gid)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: dir + "/", Mode: 0o755, Uid: u, Gid: g, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)})
	_ = tw.Close()
	rc, err := e.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ref,
		image.ImportOptions{Changes: []string{"LABEL " + LabelManaged + "=true"}})
	if err != nil {
		return engineError("import volume owner image", err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}
