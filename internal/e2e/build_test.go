package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/runhost/runhost/internal/testenv"
)

// The sealed build path: Dockerfile builds run in a builder container
// (rootless BuildKit, RUN steps in a process sandbox of their own), with
// a run's limits, and the engine loads an image only when the build
// succeeded within its caps. Each test names what the engine's classic
// builder did instead.

// startBuildHost is startHost for tests that build: it needs the builder
// image (`make images`).
func startBuildHost(t testing.TB, env ...string) *host {
	t.Helper()
	cli := dockerClient(t)
	testenv.RequireBuilder(t, cli)
	return startHostWith(t, cli, env...)
}

// requireBuilder skips (fails in CI) a test that builds when the builder
// image is missing.
func requireBuilder(t testing.TB) {
	t.Helper()
	testenv.RequireBuilder(t, dockerClient(t))
}

// nonce is a Dockerfile line that makes it new, so it really builds
// (built images are a content-keyed cache that outlives hosts), and the
// label it puts on what it builds.
func nonce(t *testing.T) (line, label string) {
	label = fmt.Sprintf("test.nonce=%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	return "LABEL " + label + "\n", label
}

func nonceLine(t *testing.T) string {
	line, _ := nonce(t)
	return line
}

// imagesLabelled counts the engine's images with label (key=value),
// dangling ones included.
func imagesLabelled(t *testing.T, cli *client.Client, label string) int {
	t.Helper()
	list, err := cli.ImageList(context.Background(), image.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// outsideListener stands for a host outside: a TCP listener on the gateway
// address of a Docker bridge this test creates. It counts connections.
func outsideListener(t *testing.T, cli *client.Client) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ctx := context.Background()
	name := uniqueTestName("runhost-test-outside-")
	if _, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Labels: map[string]string{"runhost.test": "true"}}); err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() { _ = cli.NetworkRemove(context.Background(), name) })
	info, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil || len(info.IPAM.Config) == 0 {
		t.Fatalf("inspect network: %v", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(info.IPAM.Config[0].Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\n\r\noutside\n"))
			c.Close()
		}
	}()
	return ln.Addr().String(), accepted
}

// interfacesPy lists a RUN step's network interfaces. Rootless BuildKit
// gives RUN steps no /sys (moby/buildkit#2484), so not /sys/class/net.
const interfacesPy = `def interfaces():
    return sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])`

func uniqueTestName(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, time.Now().UnixNano())
}

// RUN steps have a process sandbox: they see their own processes only,
// not BuildKit, rootlesskit or the builder's entry (with BuildKit's
// --oci-worker-no-process-sandbox, as on Kubernetes, they see and can
// signal all of them).
func TestBuildRunStepsSeeOnlyTheirOwnProcesses(t *testing.T) {
	h := startBuildHost(t)
	res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\n" + nonceLine(t) +
		"RUN for p in /proc/[0-9]*; do echo \"proc $(basename $p): $(tr '\\0' ' ' < $p/cmdline)\"; done > /home/runner/procs\n" +
		"CMD [\"cat\", \"/home/runner/procs\"]\n"})
	if res.Stage != "run" || !strings.Contains(res.Stdout, "proc 1: /bin/sh -c") {
		t.Fatalf("%+v", res)
	}
	for _, p := range []string{"buildkitd", "rootlesskit", "runhost-build", "buildctl", "/.runhost/init"} {
		if strings.Contains(res.Stdout, p) {
			t.Errorf("a RUN step sees %s:\n%s", p, res.Stdout)
		}
	}
}

// RUN steps run as root inside the sandbox (the runtime images' uid 1000
// made `RUN echo hi > /greeting` fail), and the built image still runs as
// the run user.
func TestBuildRunStepsRunAsRootInTheSandbox(t *testing.T) {
	h := startBuildHost(t)
	res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/python:3.11\n" + nonceLine(t) +
		"RUN echo hi > /greeting && id -u > /build-uid\n" +
		"CMD [\"sh\", \"-c\", \"cat /greeting /build-uid; id -u\"]\n"})
	if res.Stage != "run" || res.Stdout != "hi\n0\n1000\n" {
		t.Fatalf("%+v", res)
	}
}

// Without the grant a RUN step has no network at all: loopback only, and
// a listener on a bridge of this machine is never reached.
func TestBuildRunStepsHaveNoNetwork(t *testing.T) {
	cli := dockerClient(t)
	outside, accepted := outsideListener(t, cli)
	h := startBuildHost(t)
	probe := fmt.Sprintf(`import json, os, socket
`+interfacesPy+`
res = {'interfaces': interfaces()}
s = socket.socket(); s.settimeout(3)
try:
    s.connect(('%s', %s)); res['outside'] = 'CONNECTED'
except OSError:
    res['outside'] = 'failed'
print(json.dumps(res))
`, strings.Split(outside, ":")[0], strings.Split(outside, ":")[1])
	res := h.run("dockerfile", map[string]any{
		"dockerfile": "FROM runhost/python:3.11\n" + nonceLine(t) + "COPY probe.py /\nRUN python3 /probe.py > /home/runner/probe.json\nCMD [\"cat\", \"/home/runner/probe.json\"]\n",
		"files":      []map[string]string{{"path": "probe.py", "content": probe}},
	})
	var got map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
		t.Fatalf("%+v: %v", res, err)
	}
	if fmt.Sprint(got["interfaces"]) != "[lo]" || got["outside"] != "failed" || accepted.Load() != 0 {
		t.Fatalf("a RUN step without the grant reached %v (the listener accepted %d)", got, accepted.Load())
	}
}

// With the grant (RUNHOST_BUILD_NETWORK) a RUN step reaches allowed hosts
// only through the egress proxy: the package index works, a host that is
// not allowed is refused by the proxy, and a direct connection fails (the
// classic builder put RUN steps on the engine's bridge, where it worked).
func TestBuildNetworkGrantGoesOnlyThroughTheProxy(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	outside, accepted := outsideListener(t, cli)
	host, port, _ := strings.Cut(outside, ":")
	h := startBuildHost(t, append(idx.env(), "RUNHOST_BUILD_NETWORK=true")...)
	probe := fmt.Sprintf(`import json, os, socket, urllib.request, urllib.error
`+interfacesPy+`
res = {'interfaces': interfaces(), 'proxy': os.environ.get('HTTP_PROXY', '')}
def get(name, url):
    try:
        urllib.request.urlopen(url, timeout=10).read(); res[name] = 'ok'
    except urllib.error.HTTPError as e:
        res[name] = e.code
    except Exception as e:
        res[name] = type(e).__name__
get('allowed', '%s/runhost-greet/')
get('outside_via_proxy', 'http://%s:%s/')
s = socket.socket(); s.settimeout(3)
try:
    s.connect(('%s', %s)); res['outside_direct'] = 'CONNECTED'
except OSError:
    res['outside_direct'] = 'failed'
print(json.dumps(res))
`, idx.PipIndexURL, host, port, host, port)
	res := h.run("dockerfile", map[string]any{
		"dockerfile": "FROM runhost/python:3.11\n" + nonceLine(t) + "COPY probe.py /\nRUN python3 /probe.py > /home/runner/probe.json\nCMD [\"cat\", \"/home/runner/probe.json\"]\n",
		"files":      []map[string]string{{"path": "probe.py", "content": probe}},
	})
	var got map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
		t.Fatalf("%+v: %v", res, err)
	}
	t.Logf("a RUN step with the grant reached: %v", got)
	want := map[string]any{"allowed": "ok", "outside_via_proxy": float64(403), "outside_direct": "failed", "interfaces": []any{"lo"}}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
	if accepted.Load() != 0 {
		t.Errorf("the outside listener accepted %d connections", accepted.Load())
	}
	// The image keeps nothing of the proxy.
	inspect, err := cli.ImageInspect(context.Background(), res.Build.Image)
	if err != nil {
		t.Fatal(err)
	}
	if env := fmt.Sprint(inspect.Config.Env); strings.Contains(strings.ToLower(env), "proxy") {
		t.Errorf("the built image's environment names the proxy: %s", env)
	}
}

// A fork bomb in a RUN step runs into the build's pids limit and fails the
// build; the host goes on serving and nothing is left behind.
func TestBuildForkBombFails(t *testing.T) {
	cli := dockerClient(t)
	h := startBuildHost(t, "RUNHOST_BUILD_PIDS_LIMIT=256")
	line, label := nonce(t)
	// Bounded, so the classic builder (no pids limit) survives it too.
	res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\n" + line +
		"RUN i=0; while [ $i -lt 1500 ]; do sleep 30 & i=$((i+1)); done; echo spawned $i\nCMD [\"true\"]\n"})
	if res.Stage != "build" || strings.Contains(res.Build.Log, "spawned 1500") {
		t.Fatalf("the fork bomb built: %+v", res)
	}
	t.Logf("build error: %s", res.Stderr)
	if ok := h.run("shell", map[string]any{"code": "echo fine"}); ok.Stdout != "fine\n" {
		t.Fatalf("the host after the bomb: %+v", ok)
	}
	if n := imagesLabelled(t, cli, label); n != 0 {
		t.Errorf("%d images of the failed build on the engine", n)
	}
}

// A RUN step that fills the builder's disk fails the build with a clear
// error; the engine's disk never saw it.
func TestBuildDiskIsBounded(t *testing.T) {
	h := startBuildHost(t, "RUNHOST_BUILD_DISK_MB=400")
	res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\n" + nonceLine(t) +
		"RUN dd if=/dev/zero of=/home/runner/big bs=1M count=600\nCMD [\"true\"]\n"})
	if res.Stage != "build" || !strings.Contains(res.Stderr, "ran out of disk") || !strings.Contains(res.Build.Log, "No space left on device") {
		t.Fatalf("%+v", res)
	}
}

// An image over RUNHOST_BUILD_IMAGE_MB fails the build, and nothing of it
// is loaded into the engine: no image, tagged or dangling. (The cap counts
// what streams to the engine: the layers a build adds, plus on an engine
// with the containerd image store the base's 109 MB.)
func TestBuildImageSizeIsCapped(t *testing.T) {
	cli := dockerClient(t)
	h := startBuildHost(t, "RUNHOST_BUILD_IMAGE_MB=150")
	line, label := nonce(t)
	res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\n" + line +
		"RUN head -c 200000000 /dev/urandom > /home/runner/blob\nCMD [\"true\"]\n"})
	if res.Stage != "build" || !strings.Contains(res.Stderr, "larger than RUNHOST_BUILD_IMAGE_MB") {
		t.Fatalf("%+v", res)
	}
	if n := imagesLabelled(t, cli, label); n != 0 {
		t.Errorf("%d images of the refused build are on the engine", n)
	}
	// Under the cap the same base builds.
	ok := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\n" + nonceLine(t) + "RUN head -c 1000000 /dev/urandom > /home/runner/blob\nCMD [\"wc\", \"-c\", \"/home/runner/blob\"]\n"})
	if ok.Stdout != "1000000 /home/runner/blob\n" {
		t.Fatalf("a build under the cap: %+v", ok)
	}
}

// Base images are exported once per image ID into a read-only cache
// volume; a second build of another Dockerfile on the same base reuses it,
// and so does another host (which reads the volume's layout index).
func TestBuildBasesAreExportedOnce(t *testing.T) {
	cli := dockerClient(t)
	base, id := testBaseImage(t, cli)
	label := "runhost.base=" + strings.TrimPrefix(id, "sha256:")
	env := "RUNHOST_ALLOWED_IMAGES=runhost-test/*,runhost/*"
	for i, h := range []*host{startBuildHost(t, env), startBuildHost(t, env), startBuildHost(t, env)} {
		res := h.run("dockerfile", map[string]any{"dockerfile": "FROM " + base + "\n" + nonceLine(t) + "CMD [\"echo\", \"built\"]\n"})
		if res.Stdout != "built\n" {
			t.Fatalf("build %d: %+v", i, res)
		}
		if got := volumesLabelled(t, cli, label); len(got) != 1 {
			t.Fatalf("build %d: volumes of the base: %v", i, got)
		}
	}
}

// A base volume whose export never finished (no layout index) is replaced,
// so is one removed under a running host, and the cache stays within RUNHOST_BUILD_BASES_CACHE_MB: the base of an
// earlier build goes once no build uses it.
func TestBuildBaseCacheRecoversAndIsBounded(t *testing.T) {
	cli := dockerClient(t)
	baseA, idA := testBaseImage(t, cli)
	baseB, idB := testBaseImage(t, cli)
	volA := "runhost-base-" + strings.TrimPrefix(idA, "sha256:")
	if _, err := cli.VolumeCreate(context.Background(), volume.CreateOptions{Name: volA, Labels: map[string]string{
		"runhost.managed": "true", "runhost.base": strings.TrimPrefix(idA, "sha256:")}}); err != nil {
		t.Fatal(err)
	}
	h := startBuildHost(t, "RUNHOST_BUILD_BASES_CACHE_MB=1", "RUNHOST_ALLOWED_IMAGES=runhost-test/*,runhost/*")
	build := func(base string) {
		t.Helper()
		res := h.run("dockerfile", map[string]any{"dockerfile": "FROM " + base + "\n" + nonceLine(t) + "CMD [\"echo\", \"built\"]\n"})
		if res.Stdout != "built\n" {
			t.Fatalf("build on %s: %+v", base, res)
		}
	}
	build(baseA) // over the empty volume an earlier host left
	if got := volumesLabelled(t, cli, "runhost.base="+strings.TrimPrefix(idA, "sha256:")); len(got) != 1 {
		t.Fatalf("volumes of base A: %v", got)
	}
	// Removed by hand under the running host, it is exported again.
	if err := cli.VolumeRemove(context.Background(), volA, true); err != nil {
		t.Fatal(err)
	}
	build(baseA)
	if got := volumesLabelled(t, cli, "runhost.base="+strings.TrimPrefix(idA, "sha256:")); len(got) != 1 {
		t.Fatalf("volumes of base A after its removal: %v", got)
	}
	build(baseB)
	testenv.Eventually(t, 30*time.Second, "base A's volume to be evicted", func() bool {
		return len(volumesLabelled(t, cli, "runhost.base="+strings.TrimPrefix(idA, "sha256:"))) == 0
	})
	if got := volumesLabelled(t, cli, "runhost.base="+strings.TrimPrefix(idB, "sha256:")); len(got) != 1 {
		t.Fatalf("volumes of base B, the one in use last: %v", got)
	}
}

// Without the builder image a build is a 503 that says how to make it.
func TestBuildWithoutTheBuilderImageIs503(t *testing.T) {
	h := startHost(t, "RUNHOST_BUILDER_IMAGE=runhost/builder:no-such-tag")
	status, body := h.post("/runtimes/dockerfile/run", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nCMD [\"true\"]\n"})
	if status != 503 || decodeError(t, body).Error.Code != "image_missing" || !strings.Contains(string(body), "make images") {
		t.Fatalf("%d %s", status, body)
	}
}

func volumesLabelled(t *testing.T, cli *client.Client, label string) []string {
	t.Helper()
	list, err := cli.VolumeList(context.Background(), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range list.Volumes {
		names = append(names, v.Name)
	}
	return names
}

// testBaseImage makes an image of its own (runhost/shell:bookworm's layers
// under a new ID), removed with its cache volume after the test.
func testBaseImage(t *testing.T, cli *client.Client) (name, id string) {
	t.Helper()
	return commitTestImage(t, cli, "runhost-test/base:", "runhost/shell:bookworm", nil)
}

// commitTestImage makes an image of its own, named prefix and a number:
// from's, after script (if any) ran in it as root with no network,
// committed with changes (Dockerfile instructions; the script's user and
// command stay unless they change them). The image and the
// build bases cache's volume of it are removed after the test.
func commitTestImage(t *testing.T, cli *client.Client, prefix, from string, script []string, changes ...string) (name, id string) {
	t.Helper()
	ctx := context.Background()
	name = uniqueTestName(prefix)
	cfg := &container.Config{Image: from, Cmd: []string{"true"}, Labels: map[string]string{"runhost.test": "true"}}
	if script != nil {
		cfg.Cmd, cfg.User = script, "0"
	}
	created, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	if script != nil {
		waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
		if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case w := <-waitC:
			if w.StatusCode != 0 {
				t.Fatalf("making %s: %q exited %d", name, script, w.StatusCode)
			}
		case err := <-errC:
			t.Fatal(err)
		}
	}
	committed, err := cli.ContainerCommit(ctx, created.ID, container.CommitOptions{Reference: name, Changes: append(changes, "LABEL runhost.test.base="+name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), name, image.RemoveOptions{Force: true})
		_ = cli.VolumeRemove(context.Background(), "runhost-base-"+strings.TrimPrefix(committed.ID, "sha256:"), true)
	})
	return name, committed.ID
}
