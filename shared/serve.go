package shared

import (
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/runhost/runhost/internal/pluginwire"
)

// Serve runs impl as a runhost plugin and returns when the host disconnects.
// Call it from main and do nothing else there: a plugin must never write to
// stdout (it carries the handshake). Log with Log or Logger; they write JSON
// to stderr, which the host folds into its own log.
func Serve(impl Runtime) {
	hs := pluginwire.Handshake
	if os.Getenv(hs.MagicCookieKey) != hs.MagicCookieValue {
		// Started by hand, not by the host: say what this is instead of
		// go-plugin's generic notice.
		fmt.Fprintf(os.Stderr, "%s is a runhost runtime plugin: the runhost host starts it, it is not run by hand.\n"+
			"Install it in the host's RUNHOST_PLUGIN_DIR (named runhost-plugin-<name>), or check it with:\n"+
			"  host plugin check %s\n", os.Args[0], os.Args[0])
		os.Exit(2)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		VersionedPlugins: map[int]plugin.PluginSet{
			pluginwire.ProtocolVersion: {pluginwire.PluginName: &pluginwire.Plugin{Impl: impl}},
		},
		GRPCServer: pluginwire.NewServer,
		Logger:     Logger(),
	})
}

// Logger returns the plugin's logger: hclog JSON on stderr, which the host
// parses and re-logs under the plugin's name. Inside a call, use Log(ctx).
func Logger() hclog.Logger {
	loggerOnce.Do(func() {
		// No name: the host files the lines under the plugin's own name.
		logger = hclog.New(&hclog.LoggerOptions{
			Output:     os.Stderr,
			JSONFormat: true,
			Level:      hclog.Info,
		})
	})
	return logger
}

var (
	loggerOnce sync.Once
	logger     hclog.Logger
)
