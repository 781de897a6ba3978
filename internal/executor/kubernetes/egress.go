package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/runhost/runhost/internal/egress"
	"github.com/runhost/runhost/internal/executor"
)

// LabelEgress marks the egress proxy's pod; the install NetworkPolicy lets
// install pods reach pods with this label, and nothing else.
const LabelEgress = "runhost.egress"

// ErrNoRunNetwork: on Kubernetes only install pods reach the proxy (the
// NetworkPolicy lets nothing else in); network grants for runs are refused
// at start-up, and a run job with a network here is this error.
var ErrNoRunNetwork = fmt.Errorf("%w: network for runs (egress grants) is not available on Kubernetes; only dependency installs reach the egress proxy", executor.ErrUnsupported)

// egressPort is where the proxy pod listens.
const egressPort = 3128

// The proxy pod lives egressLifetime (its sweep deadline); the host moves
// installs to a new one when less than egressMinLeft is left, so an
// install never outlives the proxy it uses.
const (
	egressLifetime = 2 * time.Hour
	egressMinLeft  = time.Hour
)

// EgressConfig configures the allow-list proxy pod.
type EgressConfig struct {
	Image string   // holds runhost-egress at /egress
	Allow []string // allowed hosts
	CIDRs []string // private ranges that may be reached
}

// egressPod is this host's proxy pod, started on the first install that
// needs the network.
type egressPod struct {
	mu       sync.Mutex
	name     string
	addr     string // pod IP:port
	deadline time.Time
}

// egressAddr returns the address of a ready proxy pod, starting one if
// there is none (or the one there is has ended or is near its deadline).
func (e *Executor) egressAddr(ctx context.Context) (string, error) {
	p := &e.egress
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name != "" && time.Until(p.deadline) > egressMinLeft {
		pod, err := e.core.getPod(ctx, p.name)
		if err == nil && podReady(pod) && pod.DeletionTimestamp == nil {
			return p.addr, nil
		}
		e.log.Warn("egress proxy pod is gone or not ready; starting a new one", "pod", p.name, "error", err)
		e.delete(ctx, p.name)
	}
	// A pod near its deadline is left to the sweep: installs still using
	// it keep it until then.
	p.name = ""
	name, addr, deadline, err := e.startEgress(ctx)
	if err != nil {
		return "", err
	}
	p.name, p.addr, p.deadline = name, addr, deadline
	return addr, nil
}

// startEgress creates the proxy pod and waits until it accepts connections.
func (e *Executor) startEgress(ctx context.Context) (name, addr string, deadline time.Time, err error) {
	cfg := e.cfg.Egress
	if cfg.Image == "" {
		return "", "", time.Time{}, errors.New("egress proxy image not set (RUNHOST_K8S_EGRESS_IMAGE)")
	}
	start := time.Now()
	deadline = start.Add(egressLifetime)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	created, err := e.core.createPod(cctx, e.egressPodSpec(deadline))
	cancel()
	if err != nil {
		return "", "", time.Time{}, createError(err)
	}
	if err := e.waitPod(ctx, created.Name, podReady); err != nil {
		e.delete(ctx, created.Name)
		return "", "", time.Time{}, fmt.Errorf("egress proxy pod: %w", err)
	}
	pod, err := e.core.getPod(ctx, created.Name)
	if err != nil || pod.Status.PodIP == "" {
		e.delete(ctx, created.Name)
		return "", "", time.Time{}, fmt.Errorf("egress proxy pod has no address: %v", err)
	}
	addr = net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(egressPort))
	e.log.Info("egress proxy pod started", "pod", created.Name, "address", addr, "allow", cfg.Allow, "took", time.Since(start))
	return created.Name, addr, deadline, nil
}

// egressPodSpec is the proxy pod: the same hardening as a run pod, but
// its own uid (egress.UID, which no run or install pod has), the pod
// network (NetworkPolicy lets it reach out, and only install pods in), and
// a readiness probe that asks the proxy itself for its health answer: a
// proxy that stops answering is not ready, and egressAddr replaces it.
func (e *Executor) egressPodSpec(deadline time.Time) *corev1.Pod {
	cfg := e.cfg.Egress
	uid, gid := int64(egress.UID), int64(egress.GID)
	yes, no := true, false
	active := int64((egressLifetime + 10*time.Minute).Seconds())
	mem, cpu, cpuRequest := resource.MustParse("128Mi"), resource.MustParse("500m"), resource.MustParse("50m")
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "runhost-egress-",
			Labels:       map[string]string{LabelManaged: "true", LabelInstance: e.cfg.Instance, LabelEgress: "true"},
			Annotations:  map[string]string{AnnoDeadline: strconv.FormatInt(deadline.Unix(), 10)},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			ActiveDeadlineSeconds:         &active,
			TerminationGracePeriodSeconds: new(int64),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   &yes,
				RunAsUser:      &uid,
				RunAsGroup:     &gid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "egress",
				Image:           cfg.Image,
				ImagePullPolicy: e.cfg.PullPolicy,
				Command: []string{"/egress", "-listen", ":" + strconv.Itoa(egressPort),
					"-allow", strings.Join(cfg.Allow, ","), "-allow-cidrs", strings.Join(cfg.CIDRs, ",")},
				Ports:           []corev1.ContainerPort{{Name: "proxy", ContainerPort: egressPort, Protocol: corev1.ProtocolTCP}},
				SecurityContext: hardened(uid, gid),
				Resources: corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceMemory: mem, corev1.ResourceCPU: cpu},
					Requests: corev1.ResourceList{corev1.ResourceMemory: mem, corev1.ResourceCPU: cpuRequest},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: egress.HealthPath, Port: intstr.FromInt32(egressPort)}},
					PeriodSeconds:    1,
					TimeoutSeconds:   3,
					FailureThreshold: 2,
				},
			}},
		},
	}
}

// podReady reports whether the pod's Ready condition is true.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stopEgress deletes the proxy pod.
func (e *Executor) stopEgress() {
	p := &e.egress
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name != "" {
		e.delete(context.Background(), p.name)
		p.name = ""
	}
}
