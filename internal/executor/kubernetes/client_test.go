package kubernetes

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
)

// The request each client call sends, checked against a recording server.
// The calls themselves are proved against a real API server by make e2e-k8s;
// this pins their shape (paths, query, bodies) without a cluster.
func TestCoreClientRequests(t *testing.T) {
	type seen struct{ method, path, query, body string }
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.Path, r.URL.RawQuery, string(b)}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/nodes"):
			_, _ = io.WriteString(w, `{"kind":"NodeList","apiVersion":"v1","items":[{"metadata":{"name":"n1"},"status":{"images":[{"names":["runhost/python:3.11"]}]}}]}`)
		case strings.HasSuffix(r.URL.Path, "/pods") && r.Method == http.MethodGet:
			_, _ = io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"p1"}}]}`)
		default:
			_, _ = io.WriteString(w, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"runhost-abc"}}`)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := newCoreClient(&rest.Config{Host: srv.URL}, "runs")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	zero := int64(0)

	tests := []struct {
		name string
		call func() error
		want seen
	}{
		{"ready", func() error { return c.ready(ctx) }, seen{"GET", "/readyz", "", ""}},
		{"list nodes", func() error {
			l, err := c.listNodes(ctx)
			if err == nil && (len(l.Items) != 1 || l.Items[0].Status.Images[0].Names[0] != "runhost/python:3.11") {
				t.Errorf("nodes decoded as %+v", l.Items)
			}
			return err
		}, seen{"GET", "/api/v1/nodes", "", ""}},
		{"create pod", func() error {
			p, err := c.createPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "runhost-"}})
			if err == nil && p.Name != "runhost-abc" {
				t.Errorf("created pod decoded as %q", p.Name)
			}
			return err
		}, seen{"POST", "/api/v1/namespaces/runs/pods", "", `{"kind":"Pod","apiVersion":"v1","metadata":{"generateName":"runhost-"},"spec":{"containers":null},"status":{}}` + "\n"}},
		{"get pod", func() error { _, err := c.getPod(ctx, "runhost-abc"); return err },
			seen{"GET", "/api/v1/namespaces/runs/pods/runhost-abc", "", ""}},
		{"list pods by label", func() error {
			l, err := c.listPods(ctx, metav1.ListOptions{LabelSelector: LabelManaged + "=true"})
			if err == nil && (len(l.Items) != 1 || l.Items[0].Name != "p1") {
				t.Errorf("pods decoded as %+v", l.Items)
			}
			return err
		}, seen{"GET", "/api/v1/namespaces/runs/pods", "labelSelector=runhost.managed%3Dtrue", ""}},
		{"delete pod now", func() error {
			return c.deletePod(ctx, "runhost-abc", metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}, seen{"DELETE", "/api/v1/namespaces/runs/pods/runhost-abc", "", `{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0}` + "\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = seen{}
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("sent %+v\nwant %+v", got, tt.want)
			}
		})
	}

	t.Run("watch one pod", func(t *testing.T) {
		w, err := c.watchPods(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "runhost-abc").String()})
		if err != nil {
			t.Fatal(err)
		}
		w.Stop()
		if got.method != "GET" || got.path != "/api/v1/namespaces/runs/pods" || got.query != "fieldSelector=metadata.name%3Drunhost-abc&watch=true" {
			t.Errorf("watch sent %+v", got)
		}
	})
	t.Run("attach URL", func(t *testing.T) {
		u := c.attachRequest("runhost-abc").URL()
		if u.Path != "/api/v1/namespaces/runs/pods/runhost-abc/attach" {
			t.Errorf("attach path %s", u.Path)
		}
		q := u.Query()
		for k, v := range map[string]string{"container": "run", "stdin": "true", "stdout": "true", "stderr": "true"} {
			if q.Get(k) != v {
				t.Errorf("attach %s=%q, want %q (query %s)", k, q.Get(k), v, u.RawQuery)
			}
		}
	})
}

// A refused call surfaces the API server's status, so createError can map it.
func TestCoreClientErrorsCarryStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: 403,
			Message: `pods "x" is forbidden: exceeded quota: runs, requested: pods=1, used: pods=4, limited: pods=4`,
		})
	}))
	t.Cleanup(srv.Close)
	c, err := newCoreClient(&rest.Config{Host: srv.URL}, "runs")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.createPod(context.Background(), &corev1.Pod{})
	if err == nil {
		t.Fatal("a 403 was not an error")
	}
	if got := createError(err).Error(); !strings.Contains(got, "ResourceQuota is used up") {
		t.Errorf("createError = %q, want the quota message", got)
	}
}
