package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/auth"
)

func TestAPIKeys(t *testing.T) {
	key := auth.NewKey()
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("alice "+auth.Hash(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHost(t, "RUNHOST_API_KEYS_FILE="+file)
	call := func(method, path, authz string) (int, string, http.Header) {
		req, _ := http.NewRequest(method, h.URL+path, strings.NewReader(`{"code":"print(1)"}`))
		req.Header.Set("Content-Type", "application/json")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e apiError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code, resp.Header
	}
	tests := []struct {
		name, method, path, authz string
		status                    int
	}{
		{"no key", "POST", "/runtimes/python/run", "", 401},
		{"wrong key", "POST", "/runtimes/python/run", "Bearer rh_nope", 401},
		{"not bearer", "POST", "/runtimes/python/run", "Basic " + key, 401},
		{"the hash is not a key", "POST", "/runtimes/python/run", "Bearer " + auth.Hash(key), 401},
		{"right key", "POST", "/runtimes/python/run", "Bearer " + key, 200},
		{"listing needs a key", "GET", "/runtimes", "", 401},
		{"files need a key", "GET", "/workspaces/s/files/?list", "", 401},
		{"key in the query is refused", "GET", "/runtimes?api_key=" + key, "Bearer " + key, 401},
		{"healthz is open", "GET", "/healthz", "", 200},
		{"readyz is open", "GET", "/readyz", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code, hdr := call(tt.method, tt.path, tt.authz)
			if status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
			if status == 401 && (code != "unauthorized" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer")) {
				t.Errorf("401 without the error shape or WWW-Authenticate: %q %q", code, hdr.Get("WWW-Authenticate"))
			}
		})
	}
	if strings.Contains(h.Logs(), key) {
		t.Fatal("the API key appears in the host's log")
	}
	if !strings.Contains(h.Logs(), `"key":"alice"`) {
		t.Error("requests are not logged with the key's name")
	}
}

func TestAdmissionQueueAnd429(t *testing.T) {
	h := startHost(t, "RUNHOST_MAX_RUNS=1", "RUNHOST_QUEUE_LENGTH=1", "RUNHOST_QUEUE_WAIT_MS=60000")
	slow := map[string]any{"code": "import time\ntime.sleep(2)\nprint('done')"}
	var wg sync.WaitGroup
	results := make([]runResult, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.run("python", slow)
		}()
		waitAdmitted(t, h, i)
	}
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/runtimes/python/run", strings.NewReader(`{"code":"print(1)"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third run with one slot and one queue place: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	wg.Wait()
	for i, r := range results {
		if r.Stdout != "done\n" {
			t.Errorf("run %d: %+v", i, r)
		}
	}
}

// waitAdmitted waits until i runs are admitted or queued.
func waitAdmitted(t *testing.T, h *host, i int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := h.App.Admission.Stats()
		if s.InFlight+s.Queued > i {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d never reached admission: %+v", i, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPerKeyRateLimit(t *testing.T) {
	h := startHost(t, "RUNHOST_KEY_RATE=0.2", "RUNHOST_KEY_BURST=1")
	h.run("python", map[string]any{"code": "print(1)"})
	status, body := h.post("/runtimes/python/run", map[string]any{"code": "print(1)"})
	if status != http.StatusTooManyRequests || decodeError(t, body).Error.Code != "too_many_requests" || !strings.Contains(string(body), "0.2 runs per second") {
		t.Fatalf("second run within the rate: %d %s", status, body)
	}
}

func TestManyConcurrentRunsCompleteOrAre429(t *testing.T) {
	h := startHost(t, "RUNHOST_MAX_RUNS=4", "RUNHOST_QUEUE_LENGTH=8", "RUNHOST_QUEUE_WAIT_MS=60000")
	const n = 24
	statuses := make([]int, n)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/runtimes/shell/run", strings.NewReader(`{"code":"echo ok"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("run %d: %v (a hang ends here)", i, err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	ok, busy := 0, 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 429:
			busy++
		default:
			t.Errorf("status %d", s)
		}
	}
	t.Logf("%d completed, %d refused with 429", ok, busy)
	if ok < 12 {
		t.Errorf("only %d of %d completed; 4 in flight + 8 queued must complete", ok, n)
	}
}
