package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/imagearchive"
)

var (
	idA = "sha256:" + strings.Repeat("a", 64)
	idB = "sha256:" + strings.Repeat("b", 64)
)

func TestNamedContexts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pinned []executor.BaseImage
		want   []namedContext
		fails  bool
	}{
		{"familiar names as BuildKit keys them", []executor.BaseImage{
			{Name: "runhost/python:3.11", Ref: idA},
			{Name: "docker.io/library/debian:latest", Ref: idB},
		}, []namedContext{{"debian", idB}, {"runhost/python:3.11", idA}}, false},
		{"two spellings of one image are one context", []executor.BaseImage{
			{Name: "debian", Ref: idB}, {Name: "docker.io/library/debian", Ref: idB},
		}, []namedContext{{"debian", idB}}, false},
		{"one name pinned twice", []executor.BaseImage{{Name: "debian", Ref: idA}, {Name: "debian:latest", Ref: idB}}, nil, true},
		{"an ID prefix", []executor.BaseImage{{Name: "debian", Ref: "sha256:aaaa"}}, nil, true},
		{"a name, not an ID", []executor.BaseImage{{Name: "debian", Ref: "debian"}}, nil, true},
		{"upper-case hex", []executor.BaseImage{{Name: "debian", Ref: "sha256:" + strings.Repeat("A", 64)}}, nil, true},
		{"a name that is not a reference", []executor.BaseImage{{Name: "Not A Name", Ref: idA}}, nil, true},
		{"none", nil, []namedContext{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := namedContexts(tc.pinned)
			if tc.fails {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestBuilderJob(t *testing.T) {
	b := executor.Build{
		Key:        strings.Repeat("k", 64),
		Dockerfile: []byte("FROM x\n"),
		Context:    []executor.File{{Path: "app.py", Content: []byte("print(1)")}},
		BuildArgs:  map[string]string{"B": "2", "A": "1"},
		Timeout:    time.Minute, MemoryBytes: 1 << 30, NanoCPUs: 1e9, Pids: 256,
		DiskBytes: 512 << 20, ImageBytes: 1 << 30, LogBytes: 4096,
		Labels: map[string]string{"runhost.runtime": "dockerfile"},
	}
	opts := func(job executor.Job) []string {
		var out []string
		for i, a := range job.Command {
			if a == "--opt" {
				out = append(out, job.Command[i+1])
			}
		}
		return out
	}
	job := builderJob(b, "runhost/builder:t", "runhost/build:x", []string{"--oci-layout", "base0=/l"})
	if job.Image != "runhost/builder:t" || job.User != builderUser || job.Command[0] != builderEntry || !slices.Contains(job.Env, "RUNHOST_BUILD_PROCESS_SANDBOX=true") {
		t.Errorf("job: user %s command %v env %v", job.User, job.Command[:1], job.Env)
	}
	if l := job.Limits; l.MemoryBytes != b.MemoryBytes+b.DiskBytes || l.Pids != 256 || l.OutputBytes != 4096 || l.Timeout != time.Minute {
		t.Errorf("limits %+v", l)
	}
	got := opts(job)
	for _, want := range []string{"force-network-mode=none", "build-arg:A=1", "build-arg:B=2",
		"label:runhost.build=" + b.Key, "label:runhost.managed=true", "label:runhost.runtime=dockerfile"} {
		if !slices.Contains(got, want) {
			t.Errorf("no --opt %s in %v", want, got)
		}
	}
	if !slices.Contains(job.Command, "type=docker,name=runhost/build:x,dest=-,compression=uncompressed") || !slices.Contains(job.Command, "base0=/l") {
		t.Errorf("command %v", job.Command)
	}
	for _, a := range got {
		if strings.Contains(strings.ToLower(a), "proxy") {
			t.Errorf("proxy argument %s without the network grant", a)
		}
	}
	// A CA bundle without the grant is not given (the policy never sets
	// one, but the executor does not rely on it).
	b.CA = []byte("PEM")
	if job := builderJob(b, "runhost/builder:t", "runhost/build:x", nil); hasCA(job) {
		t.Errorf("the CA bundle without the network grant: env %v", job.Env)
	}

	b.Network = true
	got = opts(builderJob(b, "runhost/builder:t", "runhost/build:x", nil))
	if slices.Contains(got, "force-network-mode=none") || !slices.Contains(got, "build-arg:HTTP_PROXY=http://"+proxyListen) || !slices.Contains(got, "build-arg:https_proxy=http://"+proxyListen) {
		t.Errorf("with the grant: %v", got)
	}
	job = builderJob(b, "runhost/builder:t", "runhost/build:x", nil)
	for _, e := range job.Env {
		if strings.Contains(strings.ToLower(e), "proxy=") {
			t.Errorf("the builder itself gets %s: BuildKit would fetch through the proxy", e)
		}
	}
	// The bundle goes beside the context, for runhost-runc; never into the
	// context or a build argument, where the image could keep it.
	if !hasCA(job) || !slices.Contains(job.Env, "RUNHOST_BUILD_CA_ENV="+strings.Join(executor.CAEnv, " ")) {
		t.Errorf("the granted build's env %v", job.Env)
	}
	for _, f := range job.Files {
		if f.Path == buildCAFile && string(f.Content) != "PEM" || strings.HasPrefix(f.Path, "context/") && string(f.Content) == "PEM" {
			t.Errorf("file %s: %q", f.Path, f.Content)
		}
	}
	for _, a := range job.Command {
		if strings.Contains(a, "PEM") || strings.Contains(a, "CERT") {
			t.Errorf("the bundle reaches BuildKit: %s", a)
		}
	}
	b.CA = nil
	if job := builderJob(b, "runhost/builder:t", "runhost/build:x", nil); hasCA(job) {
		t.Errorf("no bundle configured (RUNHOST_CA_BUNDLE=none), yet env %v", job.Env)
	}
}

// hasCA says whether a builder job carries a CA bundle for its RUN steps.
func hasCA(job executor.Job) bool {
	file := slices.ContainsFunc(job.Files, func(f executor.File) bool { return f.Path == buildCAFile })
	return file || slices.Contains(job.Env, "RUNHOST_BUILD_CA="+executor.RunDir+"/"+buildCAFile)
}

func TestBuildError(t *testing.T) {
	for _, tc := range []struct{ log, want string }{
		{"#5 [2/2] RUN false\n#5 ERROR: process did not complete\nerror: failed to solve: process \"/bin/sh -c false\" did not complete successfully: exit code: 1\n",
			`failed to solve: process "/bin/sh -c false" did not complete successfully: exit code: 1`},
		{"#5 dd: error writing '/big': No space left on device\nerror: failed to solve: exit code: 1\n",
			"the build ran out of disk (RUNHOST_BUILD_DISK_MB, 512 MB): failed to solve: exit code: 1"},
		{"something else\nlast words\n", "the Dockerfile did not build: last words"},
	} {
		if got := buildError([]byte(tc.log), 512<<20); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.log, got, tc.want)
		}
	}
}

func TestWithoutNoise(t *testing.T) {
	log := "time=\"2026-11-29T09:34:56Z\" level=warning msg=\"failed check for fsverity support\" error=\"mkdir /.runhost-bases/x: read-only file system\"\n#1 [internal] load build definition\n#1 DONE 0.0s\n"
	if got := string(withoutNoise([]byte(log))); got != "#1 [internal] load build definition\n#1 DONE 0.0s\n" {
		t.Errorf("got %q", got)
	}
	if got := string(withoutNoise([]byte("no newline at the end"))); got != "no newline at the end" {
		t.Errorf("got %q", got)
	}
}

// loadRecorder is an engine whose ImageLoad reads the archive it is sent
// and records how the stream ended.
type loadRecorder struct {
	engine
	got    chan loadSeen
	answer string
}

type loadSeen struct {
	body []byte
	err  error // the body's read error: nil for a clean end
}

func (f loadRecorder) ImageLoad(ctx context.Context, input io.Reader, _ ...client.ImageLoadOption) (image.LoadResponse, error) {
	body, err := io.ReadAll(input)
	f.got <- loadSeen{body, err}
	if err != nil {
		return image.LoadResponse{}, err
	}
	return image.LoadResponse{Body: io.NopCloser(strings.NewReader(f.answer)), JSON: true}, nil
}

func builtArchive(t *testing.T, size int) []byte {
	t.Helper()
	layer := func(content []byte) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "blob", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		_, _ = tw.Write(content)
		_ = tw.Close()
		return buf.Bytes()
	}(bytes.Repeat([]byte{'x'}, size))
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	config := []byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:` + sum(layer) + `"]}}`)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body []byte
	}{
		{"blobs/sha256/" + sum(layer), layer},
		{"blobs/sha256/" + sum(config), config},
		{"manifest.json", []byte(`[{"Config":"blobs/sha256/` + sum(config) + `","RepoTags":["runhost/python:3.11"],"Layers":["blobs/sha256/` + sum(layer) + `"]}]`)},
	} {
		_ = tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		_, _ = tw.Write(f.body)
	}
	_ = tw.Close()
	return buf.Bytes()
}

func TestImageLoadOnlyWhenBuilt(t *testing.T) {
	archive := builtArchive(t, 100<<10)
	for _, tc := range []struct {
		name     string
		built    bool
		max      int64
		answer   string
		wantErr  error
		complete bool // the engine got a whole archive, cleanly ended
		stopped  bool // the builder was stopped
	}{
		{"built", true, 1 << 20, `{"stream":"Loaded image: runhost/build:x\n"}`, nil, true, false},
		{"the build failed after its export", false, 1 << 20, "", nil, false, false},
		{"over the cap", true, 50 << 10, "", imagearchive.ErrTooLarge, false, true},
		{"the engine refused it", true, 1 << 20, `{"errorDetail":{"message":"no space left on device"}}`, errors.New("no space left on device"), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := loadRecorder{got: make(chan loadSeen, 1), answer: tc.answer}
			e := &Executor{engine: eng}
			stopped := false
			l := e.startLoad(context.Background(), "runhost/build:x", tc.max, nil, func() { stopped = true })
			for p := archive; len(p) > 0; p = p[min(len(p), 7000):] {
				_, _ = l.Write(p[:min(len(p), 7000)])
			}
			err := l.finish(tc.built)
			switch {
			case tc.wantErr == nil && tc.built && err != nil:
				t.Fatalf("finish: %v", err)
			case tc.wantErr != nil && (err == nil || !errors.Is(err, tc.wantErr) && !strings.Contains(err.Error(), tc.wantErr.Error())):
				t.Fatalf("finish: %v, want %v", err, tc.wantErr)
			}
			seen := <-eng.got
			if complete := seen.err == nil; complete != tc.complete {
				t.Fatalf("the engine's body ended with %v; want a clean end: %v", seen.err, tc.complete)
			}
			if tc.complete {
				tr := tar.NewReader(bytes.NewReader(seen.body))
				var names []string
				for {
					hdr, err := tr.Next()
					if err != nil {
						if err != io.EOF {
							t.Fatal(err)
						}
						break
					}
					names = append(names, hdr.Name)
					if hdr.Name == "manifest.json" {
						b, _ := io.ReadAll(tr)
						if !strings.Contains(string(b), `"RepoTags":["runhost/build:x"]`) || strings.Contains(string(b), "python") {
							t.Errorf("manifest.json as loaded: %s", b)
						}
					}
				}
				if len(names) != 3 {
					t.Errorf("loaded %v", names)
				}
			}
			if stopped != tc.stopped {
				t.Errorf("builder stopped: %v, want %v", stopped, tc.stopped)
			}
		})
	}
}

func TestImageLoadWithoutAnArchive(t *testing.T) {
	eng := loadRecorder{got: make(chan loadSeen, 1)}
	l := (&Executor{engine: eng}).startLoad(context.Background(), "runhost/build:x", 1<<20, nil, func() {})
	if err := l.finish(false); err != nil {
		t.Fatalf("a build that failed before its export: %v", err)
	}
	if err := (&Executor{engine: eng}).startLoad(context.Background(), "r", 1<<20, nil, func() {}).finish(true); err == nil {
		t.Fatal("a build that reported success without an image: no error")
	}
	select {
	case seen := <-eng.got:
		t.Fatalf("the engine was asked to load %d bytes", len(seen.body))
	default:
	}
}

func TestBoundedLeavesNoLimitOpen(t *testing.T) {
	b := bounded(executor.Build{})
	if b.MemoryBytes <= 0 || b.NanoCPUs <= 0 || b.Pids <= 0 || b.DiskBytes <= 0 || b.ImageBytes <= 0 || b.LogBytes <= 0 || b.Timeout <= 0 {
		t.Errorf("an unset bound stays open: %+v", b)
	}
	set := executor.Build{MemoryBytes: 1, NanoCPUs: 2, Pids: 3, DiskBytes: 4, ImageBytes: 5, LogBytes: 6, Timeout: 7}
	if got := bounded(set); got.MemoryBytes != 1 || got.Pids != 3 || got.DiskBytes != 4 || got.ImageBytes != 5 || got.Timeout != 7 {
		t.Errorf("set bounds changed: %+v", got)
	}
}
