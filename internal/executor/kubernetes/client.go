package kubernetes

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// coreClient makes the few core/v1 calls the executor needs (pods and
// nodes). client-go's generated clientset would do the same, but importing
// it registers every API group's types when the process starts: about
// 9 MiB more resident memory in every host, whichever executor it runs.
// This client knows core/v1 alone, and only once an executor is created.
type coreClient struct {
	rest      *rest.RESTClient
	namespace string
}

var (
	coreOnce   sync.Once
	coreScheme *runtime.Scheme
	coreCodecs serializer.CodecFactory
	coreParams runtime.ParameterCodec
)

func newCoreClient(rc *rest.Config, namespace string) (*coreClient, error) {
	coreOnce.Do(func() {
		coreScheme = runtime.NewScheme()
		if err := corev1.AddToScheme(coreScheme); err != nil {
			panic(err) // a static registration; cannot fail at run time
		}
		coreCodecs = serializer.NewCodecFactory(coreScheme)
		coreParams = runtime.NewParameterCodec(coreScheme)
	})
	cfg := rest.CopyConfig(rc)
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = coreCodecs.WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = "runhost"
	}
	c, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &coreClient{rest: c, namespace: namespace}, nil
}

func (c *coreClient) ready(ctx context.Context) error {
	return c.rest.Get().AbsPath("/readyz").Do(ctx).Error()
}

func (c *coreClient) listNodes(ctx context.Context) (*corev1.NodeList, error) {
	var out corev1.NodeList
	err := c.rest.Get().Resource("nodes").Do(ctx).Into(&out)
	return &out, err
}

func (c *coreClient) createPod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	var out corev1.Pod
	err := c.rest.Post().Namespace(c.namespace).Resource("pods").Body(pod).Do(ctx).Into(&out)
	return &out, err
}

func (c *coreClient) getPod(ctx context.Context, name string) (*corev1.Pod, error) {
	var out corev1.Pod
	err := c.rest.Get().Namespace(c.namespace).Resource("pods").Name(name).Do(ctx).Into(&out)
	return &out, err
}

func (c *coreClient) listPods(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	var out corev1.PodList
	err := c.rest.Get().Namespace(c.namespace).Resource("pods").VersionedParams(&opts, coreParams).Do(ctx).Into(&out)
	return &out, err
}

func (c *coreClient) watchPods(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	req := c.rest.Get().Namespace(c.namespace).Resource("pods").VersionedParams(&opts, coreParams)
	if opts.TimeoutSeconds != nil {
		req = req.Timeout(time.Duration(*opts.TimeoutSeconds) * time.Second)
	}
	return req.Watch(ctx)
}

func (c *coreClient) deletePod(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return c.rest.Delete().Namespace(c.namespace).Resource("pods").Name(name).Body(&opts).Do(ctx).Error()
}

// attachRequest is the pod's attach subresource for the run container.
func (c *coreClient) attachRequest(name string) *rest.Request {
	return c.attachContainer(name, "run")
}

// attachContainer is the pod's attach subresource for one of its containers.
func (c *coreClient) attachContainer(name, container string) *rest.Request {
	return c.rest.Post().Namespace(c.namespace).Resource("pods").Name(name).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{Container: container, Stdin: true, Stdout: true, Stderr: true}, coreParams)
}
