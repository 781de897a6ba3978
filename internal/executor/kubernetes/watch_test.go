package kubernetes

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/runhost/runhost/internal/executor"
)

// An API server may end a watch at any time; waiting for a pod opens it
// again (it used to fail the run with "the pod watch ended"), and gives up
// with ErrEngineUnavailable only when watches keep ending.
func TestWaitPodOpensAnEndedWatchAgain(t *testing.T) {
	const (
		pending = `{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"runhost-abc"},"status":{"phase":"Pending"}}}` + "\n"
		running = `{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"runhost-abc"},"status":{"phase":"Running","containerStatuses":[{"name":"run","state":{"running":{}}}]}}}` + "\n"
	)
	tests := []struct {
		name        string
		runningFrom int32 // the watch that sees the pod run; 0: none does
		wantWatches int32
		wantErr     error
	}{
		{"the first watch sees it run", 1, 1, nil},
		{"two watches end before it runs", 3, 3, nil},
		{"every watch ends", 0, maxRewatch + 1, executor.ErrEngineUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var watches atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("watch") != "true" {
					http.NotFound(w, r)
					return
				}
				n := watches.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, pending)
				if n == tc.runningFrom {
					_, _ = io.WriteString(w, running)
				}
				// returning ends the watch
			}))
			t.Cleanup(srv.Close)
			c, err := newCoreClient(&rest.Config{Host: srv.URL}, "runs")
			if err != nil {
				t.Fatal(err)
			}
			e := &Executor{core: c}
			err = e.waitRunning(context.Background(), "runhost-abc")
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("waitRunning: %v, want %v", err, tc.wantErr)
			}
			if got := watches.Load(); got != tc.wantWatches {
				t.Errorf("%d watches, want %d", got, tc.wantWatches)
			}
		})
	}
}
