//go:build k8s

package k8s

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runhost/runhost/internal/testenv"
)

func resourceQuantity(n int64) *resource.Quantity { return resource.NewQuantity(n, resource.DecimalSI) }

// TestDeployedHost: the manifests' Deployment (runhost/host:latest, built
// offline from bin/ by scripts/e2e-k8s.sh) becomes available with its
// service account, and a run through it works. The test cluster runs no
// kube-proxy, so the Service is reached through its endpoints: each
// EndpointSlice address (a pod IP on the node's CNI bridge) on the
// Service's target port.
func TestDeployedHost(t *testing.T) {
	cs := clientset(t)
	ctx := context.Background()
	testenv.Eventually(t, 3*time.Minute, "the runhost Deployment to be available", func() bool {
		d, err := cs.AppsV1().Deployments("runhost").Get(ctx, "runhost", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && d.Status.AvailableReplicas == *d.Spec.Replicas
	})
	var addrs []string
	testenv.Eventually(t, time.Minute, "the Service's endpoints to be ready", func() bool {
		slices, err := cs.DiscoveryV1().EndpointSlices("runhost").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=runhost"})
		if err != nil {
			return false
		}
		addrs = addrs[:0]
		for _, s := range slices.Items {
			port := int32(0)
			for _, p := range s.Ports {
				if p.Name != nil && *p.Name == "http" && p.Port != nil {
					port = *p.Port
				}
			}
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready && port != 0 {
					addrs = append(addrs, "http://"+ep.Addresses[0]+":"+strconv.Itoa(int(port)))
				}
			}
		}
		return len(addrs) >= 2
	})
	for _, base := range addrs {
		t.Run(base, func(t *testing.T) {
			status, body := post(t, base+"/runtimes/python/run", "", map[string]any{"code": "print(1)"})
			if status != http.StatusUnauthorized {
				t.Fatalf("without a key: %d %s", status, body)
			}
			status, body = post(t, base+"/runtimes/python/run", apiKey, map[string]any{"code": "import sys; print('deployed', sys.stdin.read())", "stdin": "ok"})
			var r result
			_ = json.Unmarshal(body, &r)
			if status != http.StatusOK || r.Stdout != "deployed ok\n" {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
	// The deployed hosts' run pods are gone too.
	testenv.Eventually(t, time.Minute, "the deployed hosts' run pods to be deleted", func() bool {
		pods, err := cs.CoreV1().Pods(runsNamespace).List(ctx, metav1.ListOptions{LabelSelector: "runhost.managed=true"})
		if err != nil {
			return false
		}
		for _, p := range pods.Items {
			if !strings.HasPrefix(p.Name, "e2e-") {
				return false
			}
		}
		return true
	})
}
