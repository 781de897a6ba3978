package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/e2e/pkgindex"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/docker"
	"github.com/runhost/runhost/internal/testenv"
)

// httpsOrigins is an HTTPS server on a Docker network the test creates,
// under two names the proxy resolves (the engine's DNS on that network),
// with a certificate of a CA the test makes: it stands for public APIs.
type httpsOrigins struct {
	API, Other string // host:port of the two names
	CAFile     string // the test CA, for RUNHOST_CA_BUNDLE
	container  string
	cli        *client.Client
}

const httpsPort = "8443"

// httpsServer is the origin: each request is answered with the name it
// was for, and logged, so a test sees which names were reached.
const httpsServer = `
import http.server, ssl
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.headers.get('Host', '')
        print('REQUEST', host, self.path, flush=True)
        body = ('hello from ' + host.split(':')[0]).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(('', ` + httpsPort + `), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain('/srv/cert.pem', '/srv/key.pem')
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print('Serving HTTPS', flush=True)
srv.serve_forever()
`

// startHTTPSOrigins starts the origin on netName (the package index's
// network, which the proxy joins and may reach).
func startHTTPSOrigins(t *testing.T, cli *client.Client, netName string) httpsOrigins {
	t.Helper()
	ctx := context.Background()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	id := hex.EncodeToString(suffix[:])
	api, other := "api-"+id+".runhost.test", "other-"+id+".runhost.test"
	caPEM, certPEM, keyPEM := testCertificates(t, api, other)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image:  "runhost/python:3.11",
		Cmd:    []string{"python3", "-u", "/srv/server.py"},
		Labels: map[string]string{"runhost.test": "true"},
	}, &container.HostConfig{NetworkMode: container.NetworkMode(netName)}, &network.NetworkingConfig{
		EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{api, other}}},
	}, nil, "")
	if err != nil {
		t.Fatalf("create the HTTPS origin: %v", err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	archive, err := pkgindex.Tar(map[string][]byte{"srv/server.py": []byte(httpsServer), "srv/cert.pem": certPEM, "srv/key.pem": keyPEM})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.CopyToContainer(ctx, created.ID, "/", archive, container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("copy the origin's files: %v", err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start the origin: %v", err)
	}
	o := httpsOrigins{API: api + ":" + httpsPort, Other: other + ":" + httpsPort, CAFile: caFile, container: created.ID, cli: cli}
	testenv.Eventually(t, 20*time.Second, "the HTTPS origin to serve", func() bool {
		return strings.Contains(o.logs(t), "Serving HTTPS")
	})
	return o
}

// logs is what the origin printed: a REQUEST line per request.
func (o httpsOrigins) logs(t *testing.T) string {
	rc, err := o.cli.ContainerLogs(context.Background(), o.container, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// requests counts the requests the origin got under name.
func (o httpsOrigins) requests(t *testing.T, hostport string) int {
	return strings.Count(o.logs(t), "REQUEST "+hostport)
}

// testCertificates makes a CA and a server certificate for names.
func testCertificates(t *testing.T, names ...string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "runhost test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, _ := x509.ParseCertificate(caDER)
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// keysFile writes one fresh key per line ("name [option ...]").
func keysFile(t *testing.T, lines ...string) (string, tenants) {
	t.Helper()
	keys := tenants{}
	var b strings.Builder
	for _, l := range lines {
		name, opts, _ := strings.Cut(l, " ")
		keys[name] = auth.NewKey()
		b.WriteString(name + " " + auth.Hash(keys[name]) + " " + opts + "\n")
	}
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, keys
}

// networkResult is a run's answer with its network log.
type networkResult struct {
	runResult
	Network *struct {
		Contacted []string `json:"contacted"`
		Refused   []string `json:"refused"`
		Failed    []string `json:"failed"`
	} `json:"network"`
}

func (h *host) runNetwork(path string, req map[string]any) networkResult {
	h.t.Helper()
	status, body := h.post(path, req)
	if status != http.StatusOK {
		h.t.Fatalf("%s: status %d: %s", path, status, body)
	}
	var res networkResult
	if err := json.Unmarshal(body, &res); err != nil {
		h.t.Fatalf("decode %s: %v", body, err)
	}
	return res
}

// fetchPy fetches each URL of argv through the proxy variables and prints
// {url: body or the error's type}.
const fetchPy = `
import json, sys, urllib.request
out = {}
for url in sys.argv[1:]:
    try:
        out[url] = urllib.request.urlopen(url, timeout=15).read().decode()
    except Exception as e:
        out[url] = 'ERROR ' + type(e).__name__ + ': ' + str(e)
print(json.dumps(out))
`

// fetchJS is fetchPy for Node without a proxy agent (Node 18 and 20 do
// not read the proxy variables): a CONNECT through HTTPS_PROXY, then TLS
// to the origin, trusting NODE_EXTRA_CA_CERTS.
const fetchJS = `
const http = require('http'), tls = require('tls');
const proxy = new URL(process.env.HTTPS_PROXY);
function get(target) {
  return new Promise((resolve) => {
    const u = new URL(target);
    const req = http.request({host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: u.host});
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) { socket.destroy(); return resolve('ERROR proxy ' + res.statusCode); }
      const s = tls.connect({socket, servername: u.hostname}, () => {
        s.write('GET ' + u.pathname + ' HTTP/1.1\r\nHost: ' + u.host + '\r\nConnection: close\r\n\r\n');
      });
      let data = '';
      s.on('data', (d) => data += d);
      s.on('end', () => resolve(data.split('\r\n\r\n').slice(1).join('')));
      s.on('error', (e) => resolve('ERROR ' + e.message));
    });
    req.on('error', (e) => resolve('ERROR ' + e.message));
    req.end();
  });
}
(async () => {
  const out = {};
  for (const url of process.argv.slice(2)) out[url] = await get(url);
  console.log(JSON.stringify(out));
})();
`

// fetched decodes a fetch program's output.
func fetched(t *testing.T, res networkResult) map[string]string {
	t.Helper()
	var got map[string]string
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.Stdout)), &got); err != nil {
		t.Fatalf("fetch output %q (stderr %q, exit %d): %v", res.Stdout, res.Stderr, res.ExitCode, err)
	}
	return got
}

// TestRunNetworkByGrant: a key granted a host reaches it over HTTPS
// through the egress proxy (Python and Node, a run and a session), and the
// result lists it; another name on the same server is refused and listed;
// a key without a grant reaches nothing and cannot ask; a request beyond
// the grant is 403, a bad entry 400; a program that talks to the proxy's
// socket itself, without the forwarder's token, is refused.
func TestRunNetworkByGrant(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	o := startHTTPSOrigins(t, cli, idx.Network)
	apiHost := strings.Split(o.API, ":")[0]
	keys, key := keysFile(t,
		"granted egress="+apiHost,
		"seed egress="+apiHost+" egress-default",
		"plain")
	h := startHostWith(t, cli, append(idx.env(), "RUNHOST_API_KEYS_FILE="+keys, "RUNHOST_CA_BUNDLE="+o.CAFile)...)
	granted, seed, plain := h.as(key["granted"]), h.as(key["seed"]), h.as(key["plain"])
	apiURL, otherURL := "https://"+o.API+"/x", "https://"+o.Other+"/x"
	allow := map[string]any{"allow": []string{apiHost}}

	t.Run("python", func(t *testing.T) {
		res := granted.runNetwork("/runtimes/python/run", map[string]any{"code": fetchPy, "args": []string{apiURL, otherURL}, "network": allow})
		got := fetched(t, res)
		if got[apiURL] != "hello from "+apiHost {
			t.Errorf("the granted host: %q", got[apiURL])
		}
		if !strings.Contains(got[otherURL], "ERROR") {
			t.Errorf("the other name: %q, want an error", got[otherURL])
		}
		if res.Network == nil || !slices.Equal(res.Network.Contacted, []string{o.API}) || !slices.Equal(res.Network.Refused, []string{o.Other}) {
			t.Errorf("network log %+v, want contacted [%s] refused [%s]", res.Network, o.API, o.Other)
		}
	})
	t.Run("node", func(t *testing.T) {
		res := granted.runNetwork("/runtimes/node/run", map[string]any{"code": fetchJS, "args": []string{apiURL, otherURL}, "network": allow})
		got := fetched(t, res)
		if got[apiURL] != "hello from "+apiHost || !strings.Contains(got[otherURL], "ERROR proxy 403") {
			t.Errorf("node fetched %v", got)
		}
		if res.Network == nil || !slices.Equal(res.Network.Contacted, []string{o.API}) || !slices.Equal(res.Network.Refused, []string{o.Other}) {
			t.Errorf("network log %+v", res.Network)
		}
	})
	t.Run("session", func(t *testing.T) {
		status, body := granted.post("/sessions", map[string]any{"runtime": "python", "network": allow})
		if status != http.StatusCreated {
			t.Fatalf("create a session with network: %d %s", status, body)
		}
		var s struct{ ID string }
		_ = json.Unmarshal(body, &s)
		t.Cleanup(func() { granted.do(context.Background(), http.MethodDelete, "/sessions/"+s.ID, nil) })
		for i := range 2 { // the forward outlives the first run
			res := granted.runNetwork("/sessions/"+s.ID+"/run", map[string]any{"code": fetchPy, "args": []string{apiURL}})
			if got := fetched(t, res); got[apiURL] != "hello from "+apiHost {
				t.Errorf("session run %d: %q", i, got[apiURL])
			}
			if res.Network == nil || !slices.Equal(res.Network.Contacted, []string{o.API}) {
				t.Errorf("session run %d: network log %+v", i, res.Network)
			}
		}
		status, body = granted.post("/sessions/"+s.ID+"/run", map[string]any{"code": "1", "network": allow})
		if status != http.StatusBadRequest {
			t.Errorf("a session run asking for network: %d %s", status, body)
		}
	})
	t.Run("not asked, not default", func(t *testing.T) {
		res := granted.runNetwork("/runtimes/python/run", map[string]any{"code": fetchPy, "args": []string{apiURL}})
		if got := fetched(t, res); !strings.Contains(got[apiURL], "ERROR") || res.Network != nil {
			t.Errorf("a run that did not ask: %q, network %+v", got[apiURL], res.Network)
		}
	})
	t.Run("the CA bundle", func(t *testing.T) {
		probe := fmt.Sprintf(caProbe, strings.Join(executor.CAEnv, " "))
		want := "CA-ENV " + strings.Join(slices.Sorted(slices.Values(executor.CAEnv)), ",") + " readable"
		if res := granted.run("python", map[string]any{"code": probe, "network": allow}); !strings.Contains(res.Stdout, want) {
			t.Errorf("a granted run: %q, want %q", res.Stdout, want)
		}
		if res := granted.run("python", map[string]any{"code": probe}); !strings.Contains(res.Stdout, "CA-ENV - none") {
			t.Errorf("a run without network: %q, want no CA variables", res.Stdout)
		}
	})
	t.Run("default grant", func(t *testing.T) {
		res := seed.runNetwork("/runtimes/python/run", map[string]any{"code": fetchPy, "args": []string{apiURL}})
		if got := fetched(t, res); got[apiURL] != "hello from "+apiHost {
			t.Errorf("egress-default: %q", got[apiURL])
		}
		res = seed.runNetwork("/runtimes/python/run", map[string]any{"code": fetchPy, "args": []string{apiURL}, "network": map[string]any{"allow": []string{}}})
		if got := fetched(t, res); !strings.Contains(got[apiURL], "ERROR") {
			t.Errorf("egress-default asking for none: %q", got[apiURL])
		}
	})
	t.Run("ungranted", func(t *testing.T) {
		res := plain.runNetwork("/runtimes/python/run", map[string]any{"code": fetchPy, "args": []string{apiURL}})
		if got := fetched(t, res); !strings.Contains(got[apiURL], "ERROR") || res.Network != nil {
			t.Errorf("a key without a grant: %q, network %+v", got[apiURL], res.Network)
		}
		status, body := plain.post("/runtimes/python/run", map[string]any{"code": "1", "network": allow})
		if e := decodeError(t, body); status != http.StatusForbidden || e.Error.Code != "network_not_allowed" {
			t.Errorf("a key without a grant asking: %d %s", status, body)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		status, body := granted.post("/runtimes/python/run", map[string]any{"code": "1", "network": map[string]any{"allow": []string{apiHost, "pypi.org"}}})
		e := decodeError(t, body)
		if status != http.StatusForbidden || e.Error.Code != "network_not_allowed" || !strings.Contains(e.Error.Message, apiHost) {
			t.Errorf("beyond the grant: %d %s", status, body)
		}
		for _, bad := range []string{"169.254.169.254", "*", "localhost:8080", "*.com"} {
			status, body := granted.post("/runtimes/python/run", map[string]any{"code": "1", "network": map[string]any{"allow": []string{bad}}})
			if e := decodeError(t, body); status != http.StatusBadRequest || e.Error.Code != "invalid_network" {
				t.Errorf("%q: %d %s", bad, status, body)
			}
		}
		status, body = plain.post("/sessions", map[string]any{"runtime": "python", "network": allow})
		if e := decodeError(t, body); status != http.StatusForbidden || e.Error.Code != "network_not_allowed" {
			t.Errorf("a session beyond the grant: %d %s", status, body)
		}
	})
	t.Run("socket without the forwarder", func(t *testing.T) {
		probe := `
import glob, json, socket
out = {}
for path in glob.glob('/.runhost-egress/*.sock'):
    s = socket.socket(socket.AF_UNIX); s.settimeout(10)
    s.connect(path)
    s.sendall(b'CONNECT TARGET HTTP/1.1\r\nHost: TARGET\r\n\r\n')
    out[path] = s.recv(200).decode().split('\r\n')[0]
print(json.dumps(out))
`
		before := o.requests(t, o.API)
		res := granted.runNetwork("/runtimes/python/run", map[string]any{"code": strings.ReplaceAll(probe, "TARGET", o.API), "network": allow})
		got := fetched(t, res)
		if len(got) != 1 {
			t.Fatalf("the run sees proxy sockets %v", got)
		}
		for path, line := range got {
			if !strings.Contains(line, "403") {
				t.Errorf("%s without a token: %q, want 403", path, line)
			}
		}
		if n := o.requests(t, o.API); n != before {
			t.Errorf("the origin got %d requests through the bare socket", n-before)
		}
	})
	if n := o.requests(t, o.Other); n != 0 {
		t.Errorf("the refused name got %d requests", n)
	}
}

// TestRunNetworkProxyDiesMidRun: the proxy killed while a granted run
// uses it fails the run's next connections at once (reported as failed),
// not a hang; the next run gets a new proxy and works.
func TestRunNetworkProxyDiesMidRun(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	o := startHTTPSOrigins(t, cli, idx.Network)
	apiHost := strings.Split(o.API, ":")[0]
	h := startHostWith(t, cli, append(idx.env(), "RUNHOST_RUN_EGRESS_ALLOW="+apiHost, "RUNHOST_CA_BUNDLE="+o.CAFile)...)
	apiURL := "https://" + o.API + "/mid-run"

	// Fetch until a fetch fails after one succeeded (the test kills the
	// proxy when it sees the first), at most 40 s.
	loop := `
import sys, time, urllib.request
ok = 0
deadline = time.time() + 40
while time.time() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=10).read(); ok += 1
    except Exception as e:
        if ok:
            print('after', ok, 'fetches:', type(e).__name__, e); sys.exit(0)
    time.sleep(0.2)
print('no failure after', ok, 'fetches'); sys.exit(1)
`
	type answer struct {
		status int
		body   []byte
	}
	done := make(chan answer, 1)
	req, _ := json.Marshal(map[string]any{"code": loop, "args": []string{apiURL}, "network": map[string]any{"allow": []string{apiHost}}, "timeout_ms": 55000})
	go func() {
		resp, err := http.Post(h.URL+"/runtimes/python/run", "application/json", bytes.NewReader(req))
		if err != nil {
			done <- answer{0, []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, b}
	}()
	testenv.Eventually(t, 60*time.Second, "the run's first fetch", func() bool {
		return strings.Contains(o.logs(t), "REQUEST "+o.API+" /mid-run")
	})
	proxies, err := cli.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", docker.LabelEgress+"=true"), filters.Arg("label", docker.LabelInstance+"="+h.App.Instance))})
	if err != nil || len(proxies) != 1 {
		t.Fatalf("the host's proxy: %v, %v", proxies, err)
	}
	if err := cli.ContainerKill(context.Background(), proxies[0].ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	var res networkResult
	select {
	case a := <-done:
		if err := json.Unmarshal(a.body, &res); a.status != http.StatusOK || err != nil {
			t.Fatalf("the run: %d %s", a.status, a.body)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("the run did not end after its proxy died")
	}
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "after") {
		t.Fatalf("the run with its proxy killed: %+v", res)
	}
	t.Logf("the run saw: %s", strings.TrimSpace(res.Stdout))
	if res.Network == nil || !slices.Contains(res.Network.Contacted, o.API) || !slices.Contains(res.Network.Failed, o.API) {
		t.Errorf("network log %+v, want %s contacted and failed", res.Network, o.API)
	}
	next := h.runNetwork("/runtimes/python/run", map[string]any{"code": fetchPy, "args": []string{apiURL}, "network": map[string]any{"allow": []string{apiHost}}})
	if got := fetched(t, next); got[apiURL] != "hello from "+apiHost {
		t.Errorf("the next run: %q", got[apiURL])
	}
}

// TestBuildNetworkByKeyGrant: a key with build-egress builds a Dockerfile
// whose RUN step installs from the package index through the proxy; a key
// without it fails, and the build's log says which grant would help.
func TestBuildNetworkByKeyGrant(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	keys, key := keysFile(t, "builder build-egress", "plain")
	h := startBuildHost(t, append(idx.env(), "RUNHOST_API_KEYS_FILE="+keys)...)
	indexHost := strings.Split(strings.TrimPrefix(idx.PipIndexURL, "http://"), ":")[0]
	dockerfile := "FROM runhost/python:3.11\n" + nonceLine(t) +
		"RUN pip install --no-cache-dir --break-system-packages --index-url " + idx.PipIndexURL + " --trusted-host " + indexHost + " runhost-greet==1.0\n" +
		"CMD [\"python3\", \"-c\", \"import runhost_greet; print('installed')\"]\n"

	res := h.as(key["builder"]).run("dockerfile", map[string]any{"dockerfile": dockerfile})
	if res.Stage != "run" || !strings.Contains(res.Stdout, "installed") {
		t.Fatalf("a build with build-egress: %+v (log %s)", res, buildLog(res))
	}
	res = h.as(key["plain"]).run("dockerfile", map[string]any{"dockerfile": dockerfile + "LABEL plain=1\n"})
	if res.Stage != "build" || res.Build == nil || !strings.Contains(res.Build.Log, "build-egress") {
		t.Fatalf("a build without build-egress: %+v (log %s)", res, buildLog(res))
	}
	if !bytes.Contains([]byte(res.Build.Log), []byte("had no network")) {
		t.Errorf("the failed build's log does not say it had no network: %s", res.Build.Log)
	}
}

func buildLog(res runResult) string {
	if res.Build == nil {
		return ""
	}
	return res.Build.Log
}
