package shared

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/metadata"

	"github.com/runhost/runhost/internal/pluginwire"
)

// RequestID returns the id of the host's request a call serves ("" if the
// host sent none).
func RequestID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(pluginwire.RequestIDKey); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Log returns the plugin's logger with the request id of ctx, for log lines
// about one request: shared.Log(ctx).Info("planned", "entry", entry).
func Log(ctx context.Context) hclog.Logger {
	l := Logger()
	if id := RequestID(ctx); id != "" {
		return l.With("request_id", id)
	}
	return l
}
