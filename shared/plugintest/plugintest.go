// Package plugintest tests a runhost runtime plugin in-process, through the
// same gRPC server and client shims the host uses (panic recovery and message
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

	"github.com/runhost/runhost/shared"
)

// Connect serves impl on an in-memory gRPC connection and returns the host's
// view of it. Everything is torn down when the test ends.
func Connect(t testing.TB, impl shared.Runtime) shared.Runtime {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	server := shared.NewGRPCServer(nil)
	p := &shared.GRPCPlugin{Impl: impl}
	if err := p.GRPCServer(nil, server); err != nil {
		t.Fatalf("register runtime service: %v", err)
	}
	go func() { _ = server.Serve(ln) }()

	conn, err := grpc.NewClient("passthrough:///plugintest",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(shared.MaxMessageBytes), grpc.MaxCallSendMsgSize(shared.MaxMessageBytes)),
	)
	if err != nil {
		t.Fatalf("dial in-memory plugin: %v", err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		server.Stop()
	})
	raw, err := p.GRPCClient(context.Background(), nil, conn)
	if err != nil {
		t.Fatalf("runtime client: %v", err)
	}
	return raw.(shared.Runtime)
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
