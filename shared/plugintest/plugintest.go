// Package plugintest tests a runhost runtime plugin in-process, through the
// same gRPC server and client the host uses (panic recovery and message
// limits included), without Docker or a plugin binary.
//
//	func TestPlan(t *testing.T) {
//		rt := plugintest.Connect(t, myRuntime{})
//		spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "1.0", Code: "puts 1"})
//		...
//	}
package plugintest

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/runhost/runhost/internal/pluginhost"
	"github.com/runhost/runhost/internal/pluginwire"
	"github.com/runhost/runhost/shared"
)

// Connect serves impl on an in-memory gRPC connection and returns the host's
// view of it. Its Plan completes the request as the host does before it
// calls a plugin: Version must be one impl describes exactly, or empty for
// the default (anything else is an invalid request), and VersionImage
// becomes that version's image.
// Everything is torn down when the test ends.
func Connect(t testing.TB, impl shared.Runtime) shared.Runtime {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	server := pluginwire.NewServer(nil)
	if err := pluginwire.RegisterRuntime(server, impl); err != nil {
		t.Fatalf("register runtime service: %v", err)
	}
	go func() { _ = server.Serve(ln) }()

	conn, err := grpc.NewClient("passthrough:///plugintest",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(pluginwire.CallOptions()...),
	)
	if err != nil {
		t.Fatalf("dial in-memory plugin: %v", err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		server.Stop()
	})
	return hostView{pluginhost.NewClient(conn)}
}

// hostView is a plugin's client that completes requests as the host does.
type hostView struct{ shared.Runtime }

func (h hostView) Plan(ctx context.Context, req shared.RunRequest) (shared.Spec, error) {
	d, err := h.Describe(ctx)
	if err != nil {
		return shared.Spec{}, err
	}
	if req, err = pluginhost.CompleteRequest(d, req); err != nil {
		return shared.Spec{}, err
	}
	return h.Runtime.Plan(ctx, req)
}

// WithRequestID returns ctx carrying a request id to the plugin, as the
// host's calls do; shared.RequestID and shared.Log read it in the plugin.
func WithRequestID(ctx context.Context, id string) context.Context {
	return pluginhost.WithRequestID(ctx, id)
}

// Describe calls rt's Describe through gRPC and fails the test unless the
// host would accept the description (shared.ValidateDescription).
func Describe(t testing.TB, rt shared.Runtime) shared.Description {
	t.Helper()
	d, err := rt.Describe(context.Background())
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if err := shared.ValidateDescription(d); err != nil {
		t.Fatalf("the host would refuse this description: %v", err)
	}
	return d
}
