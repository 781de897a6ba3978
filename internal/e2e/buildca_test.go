package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/client"

	"github.com/runhost/runhost/internal/executor"
)

// caProbe prints which CA variables a build step sees and whether it can
// read the bundle they point at.
const caProbe = `
import os
names = sorted(k for k in os.environ if k in %q.split())
readable = all(open(os.environ[k]).read().startswith('-----BEGIN') for k in names)
print('CA-ENV', ','.join(names) or '-', 'readable' if names and readable else 'none')
`

// TestBuildTrustsTheCABundle: a build granted network (build-egress) runs
// RUN steps that reach an HTTPS server whose certificate is signed by a
// CA no image trusts, only RUNHOST_CA_BUNDLE, through the egress proxy,
// as the image's non-root user: the steps get the bundle and every CA
// variable. The built image keeps no trace of either: not in its config
// (environment, history), not in any file of any layer. A build without
// the grant gets no bundle and no variable, and its log says network is
// not granted.
func TestBuildTrustsTheCABundle(t *testing.T) {
	cli := dockerClient(t)
	requireBuilder(t)
	idx := startPackageIndex(t, cli)
	o := startHTTPSOrigins(t, cli, idx.Network)
	apiHost := strings.Split(o.API, ":")[0]
	keys, key := keysFile(t, "builder build-egress", "plain")
	h := startBuildHost(t, append(idx.env(), "RUNHOST_API_KEYS_FILE="+keys, "RUNHOST_CA_BUNDLE="+o.CAFile, "RUNHOST_EGRESS_ALLOW="+apiHost)...)
	apiURL := "https://" + o.API + "/from-a-build"
	files := []map[string]any{
		{"path": "fetch.py", "content": fetchPy},
		{"path": "probe.py", "content": fmt.Sprintf(caProbe, strings.Join(executor.CAEnv, " "))},
	}
	dockerfile := "FROM runhost/python:3.11\n" + nonceLine(t) +
		"COPY fetch.py probe.py /opt/\n" +
		"RUN python3 /opt/probe.py && python3 /opt/fetch.py " + apiURL + " > /tmp/fetched.json && cat /tmp/fetched.json && grep -q 'hello from' /tmp/fetched.json\n" +
		"RUN cp /tmp/fetched.json /home/runner/fetched.json\n" +
		"CMD [\"cat\", \"/home/runner/fetched.json\"]\n"

	t.Run("granted", func(t *testing.T) {
		res := h.as(key["builder"]).run("dockerfile", map[string]any{"dockerfile": dockerfile, "files": files})
		if res.Stage != "run" || res.ExitCode != 0 {
			t.Fatalf("a granted build that fetches over HTTPS: %+v (log %s)", res, buildLog(res))
		}
		var got map[string]string
		if err := json.Unmarshal([]byte(strings.TrimSpace(res.Stdout)), &got); err != nil || got[apiURL] != "hello from "+apiHost {
			t.Fatalf("the build step fetched %q (%v)", res.Stdout, err)
		}
		if want := "CA-ENV " + strings.Join(slices.Sorted(slices.Values(executor.CAEnv)), ",") + " readable"; !strings.Contains(buildLog(res), want) {
			t.Errorf("the RUN step's CA variables: want %q in the log:\n%s", want, buildLog(res))
		}
		if n := o.requests(t, o.API); n != 1 {
			t.Errorf("the origin got %d requests, want the build's 1", n)
		}
		ca, err := os.ReadFile(o.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		assertNoCATrace(t, cli, res.Image, ca)
	})
	t.Run("not granted", func(t *testing.T) {
		res := h.as(key["plain"]).run("dockerfile", map[string]any{"dockerfile": dockerfile + "LABEL plain=1\n", "files": files})
		log := buildLog(res)
		if res.Stage != "build" || !strings.Contains(log, "had no network") || !strings.Contains(log, "build-egress") {
			t.Fatalf("a build without build-egress: %+v (log %s)", res, log)
		}
		if !strings.Contains(log, "CA-ENV - none") {
			t.Errorf("the ungranted RUN step got CA variables or the bundle:\n%s", log)
		}
	})
}

// assertNoCATrace fails unless the image ref shows nothing of the CA
// bundle: no CA variable or bundle path in its config or history, and no
// layer file named after the bundle or holding its certificate.
func assertNoCATrace(t *testing.T, cli *client.Client, ref string, ca []byte) {
	t.Helper()
	ctx := context.Background()
	info, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	traces := append([]string{"runhost-ca"}, executor.CAEnv...)
	var env []string
	if info.Config != nil {
		env = info.Config.Env
	}
	has := func(s string) bool {
		return slices.ContainsFunc(traces, func(tr string) bool { return strings.Contains(s, tr) })
	}
	for _, kv := range env {
		if has(kv) {
			t.Errorf("the image's environment has %s", kv)
		}
	}
	history, err := cli.ImageHistory(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range history {
		if has(h.CreatedBy) {
			t.Errorf("the image's history has %q", h.CreatedBy)
		}
	}
	// The certificate's body, one line of it: what any copy would hold.
	var needle []byte
	for _, l := range bytes.Split(ca, []byte("\n")) {
		if len(l) == 64 {
			needle = l
			break
		}
	}
	if needle == nil {
		t.Fatalf("no 64-character line in the test CA:\n%s", ca)
	}
	rc, err := cli.ImageSave(ctx, []string{ref})
	if err != nil {
		t.Fatalf("save %s: %v", ref, err)
	}
	defer rc.Close()
	files, found := scanArchive(t, rc, needle, 0)
	if files == 0 {
		t.Fatalf("the saved image %s has no layer files", ref)
	}
	for _, f := range found {
		t.Errorf("the image has a trace of the CA bundle: %s", f)
	}
}

// scanArchive walks a tar stream — an image archive, and each archive
// within it (its layers, gzipped or not) — and returns how many layer
// files it read and where it found needle or a name with "runhost-ca".
func scanArchive(t *testing.T, r io.Reader, needle []byte, depth int) (files int, found []string) {
	t.Helper()
	br := bufio.NewReaderSize(r, 1<<20)
	if isGzip(br) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	tr := tar.NewReader(br)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, found
		}
		if err != nil {
			t.Fatalf("read the image archive (depth %d): %v", depth, err)
		}
		if strings.Contains(hdr.Name, "runhost-ca") {
			found = append(found, fmt.Sprintf("a file named %s (depth %d)", hdr.Name, depth))
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		entry := bufio.NewReaderSize(tr, 1<<20)
		if depth == 0 && (isGzip(entry) || isTar(entry)) { // a layer
			n, f := scanArchive(t, entry, needle, 1)
			files += n
			found = append(found, f...)
			continue
		}
		content, err := io.ReadAll(entry)
		if err != nil {
			t.Fatal(err)
		}
		if depth > 0 {
			files++
		}
		if bytes.Contains(content, needle) {
			found = append(found, fmt.Sprintf("the certificate in %s (depth %d)", hdr.Name, depth))
		}
	}
}

func isGzip(r *bufio.Reader) bool {
	b, _ := r.Peek(2)
	return len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b
}

func isTar(r *bufio.Reader) bool {
	b, _ := r.Peek(262)
	return len(b) == 262 && string(b[257:262]) == "ustar"
}
