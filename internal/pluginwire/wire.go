// Package pluginwire is what both ends of the host–plugin connection agree
// on: go-plugin's handshake, the protocol versions, message limits, the
// metadata key of the request id, and the generated messages (pluginpb).
//
// It sits outside package shared so that the plugin SDK's documentation
// shows plugin authors only what they use (as grpc-go keeps its plumbing in
// google.golang.org/grpc/internal). Package shared serves a runtime with it;
// package internal/pluginhost is the host's side.
package pluginwire

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Protocol versions, negotiated by go-plugin when the host starts a plugin.
// The messages are the same (runhost.plugin.v1 only gains fields); a version
// says what a plugin may rely on the host to send.
const (
	// ProtocolV1 is the first protocol: a plugin finds its version's image
	// itself. Hosts keep speaking it for plugins built against older SDKs.
	ProtocolV1 = 1
	// ProtocolVersion is what plugins built with this SDK speak: the host
	// sends the resolved version's image (PlanRequest.version_image).
	ProtocolVersion = 2
)

// PluginName is the name under which a plugin binary serves its runtime.
const PluginName = "runtime"

// MaxMessageBytes bounds one gRPC message between host and plugin. A plan
// carries the request's files, which the host caps well below this.
const MaxMessageBytes = 64 << 20

// RequestIDKey carries the host's request id in gRPC metadata, so a plugin's
// log lines name the request they belong to.
const RequestIDKey = "runhost-request-id"

// Handshake is the go-plugin handshake. The magic cookie is not a secret: it
// only stops a plugin binary from being run by hand as if it were a program.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "RUNHOST_PLUGIN",
	MagicCookieValue: "d2f0a7c4-runhost-runtime-plugin",
}

// CallOptions are the host's per-call limits, matching NewServer's.
func CallOptions() []grpc.CallOption {
	return []grpc.CallOption{grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)}
}

// NewServer builds a plugin's gRPC server: a panic in a call becomes that
// call's error, and messages may carry a full request's files. It has
// go-plugin's ServeConfig.GRPCServer signature.
func NewServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts,
		grpc.ChainUnaryInterceptor(recoverPanics),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
	)
	return grpc.NewServer(opts...)
}

// recoverPanics turns a panic in a plugin method into an error, so one bad
// request cannot kill the plugin process for everyone else.
func recoverPanics(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Errorf(codes.Internal, "plugin panicked in %s: %v", info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

// RegisterRuntime registers impl, a shared.Runtime, on s: the plugin's side
// of the protocol. Package shared sets it when it is initialised. It is a
// variable, not a function of shared's, because shared imports this package
// and must not export its server glue to plugin authors; plugintest and the
// host's tests use it to serve a runtime in-process.
var RegisterRuntime func(s *grpc.Server, impl any) error

// Plugin is go-plugin's glue for a runtime on the plugin side: GRPCServer
// registers Impl (a shared.Runtime) through RegisterRuntime. It has no
// client side; the host's is in internal/pluginhost.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl any
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the runtime service on the plugin's gRPC server.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	return RegisterRuntime(s, p.Impl)
}

// GRPCClient is the host's side, which this type does not have.
func (p *Plugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errNoClient
}

var errNoClient = errors.New("the plugin side has no client; the host uses internal/pluginhost")
