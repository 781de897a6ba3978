// Package pluginhost is the host's side of the plugin protocol: how the host
// launches a plugin binary with go-plugin, the runtime client it dispenses,
// the request id it sends along, and what it fills into a request before a
// plugin plans it.
//
// Plugin authors never need it: it is internal, so it can change with the
// host without breaking anyone's plugin. The plugin's side is package shared.
package pluginhost

import (
	"context"
	"fmt"
	"os/exec"
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/runhost/runhost/internal/pluginwire"
	"github.com/runhost/runhost/shared"
)

// Protocols are the protocol versions the host speaks, oldest first: plugins
// built against an older SDK keep working.
var Protocols = []int{pluginwire.ProtocolV1, pluginwire.ProtocolVersion}

// ClientConfig is the go-plugin client configuration the host launches a
// plugin binary with: gRPC only, mutual TLS on the plugin connection, none
// of the host's environment, every protocol version in Protocols. The
// caller sets cmd's environment and process attributes and may adjust
// timeouts before calling plugin.NewClient.
func ClientConfig(cmd *exec.Cmd, logger hclog.Logger) *plugin.ClientConfig {
	sets := map[int]plugin.PluginSet{}
	for _, v := range Protocols {
		sets[v] = plugin.PluginSet{pluginwire.PluginName: hostPlugin{}}
	}
	return &plugin.ClientConfig{
		HandshakeConfig:  pluginwire.Handshake,
		VersionedPlugins: sets,
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		AutoMTLS:         true,
		SkipHostEnv:      true,
		GRPCDialOptions:  []grpc.DialOption{grpc.WithDefaultCallOptions(pluginwire.CallOptions()...)},
	}
}

// Dispense returns the runtime a started plugin serves.
func Dispense(rpc plugin.ClientProtocol) (shared.Runtime, error) {
	raw, err := rpc.Dispense(pluginwire.PluginName)
	if err != nil {
		return nil, err
	}
	rt, ok := raw.(shared.Runtime)
	if !ok {
		return nil, fmt.Errorf("dispensed %T, not a runtime", raw)
	}
	return rt, nil
}

// hostPlugin is go-plugin's glue on the host: it only has a client side.
type hostPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

var _ plugin.GRPCPlugin = hostPlugin{}

func (hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return fmt.Errorf("the host does not serve runtimes")
}

func (hostPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// WithRequestID returns ctx carrying the request id id to the plugins it
// calls (shared.RequestID and shared.Log read it there).
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, pluginwire.RequestIDKey, id)
}

// CompleteRequest fills in what the host tells a plugin about the version
// req names: its exact name (empty means the default) and its image. The
// host resolves prefixes before; a version d does not describe is an invalid
// request.
func CompleteRequest(d shared.Description, req shared.RunRequest) (shared.RunRequest, error) {
	i := slices.IndexFunc(d.Versions, func(v shared.Version) bool {
		return v.Version == req.Version || req.Version == "" && v.Default
	})
	if i < 0 {
		return req, shared.Invalidf("%s has no version %q", d.Name, req.Version)
	}
	req.Version, req.VersionImage = d.Versions[i].Version, d.Versions[i].Image
	return req, nil
}
