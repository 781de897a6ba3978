package shared

import (
	"os/exec"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ProtocolVersion is the version of the host–plugin protocol this SDK speaks.
// It changes only when a change would break plugins built against an older SDK.
const ProtocolVersion = 1

// PluginName is the name under which a plugin binary serves its runtime.
const PluginName = "runtime"

// MaxMessageBytes bounds one gRPC message between host and plugin. A plan
// carries the request's files, which the host caps well below this.
const MaxMessageBytes = 64 << 20

// Handshake is the go-plugin handshake. The magic cookie is not a secret: it
// only stops a plugin binary from being run by hand as if it were a program.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "RUNHOST_PLUGIN",
	MagicCookieValue: "d2f0a7c4-runhost-runtime-plugin",
}

// PluginSets maps each protocol version this SDK speaks to its plugin set.
// Serving and dispensing both go through it, so a future version 2 can keep
// serving version 1 hosts by adding an entry here.
func PluginSets(impl Runtime) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Impl: impl}},
	}
}

// ClientConfig is the go-plugin client configuration the host uses to launch
// a plugin binary: gRPC only, mutual TLS on the plugin connection, and none of
// the host's environment. The host sets Cmd's environment and process
// attributes; it may adjust timeouts before calling plugin.NewClient.
func ClientConfig(cmd *exec.Cmd, logger hclog.Logger) *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSets(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		AutoMTLS:         true,
		SkipHostEnv:      true,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
		)},
	}
}
