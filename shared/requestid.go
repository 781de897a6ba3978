package shared

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/metadata"
)

// requestIDKey carries the host's request id across the plugin boundary in
// gRPC metadata, so a plugin's log lines name the request they belong to.
const requestIDKey = "runhost-request-id"

type requestIDCtx struct{}

// WithRequestID returns ctx carrying id; calls into a plugin pass it on.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	ctx = context.WithValue(ctx, requestIDCtx{}, id)
	return metadata.AppendToOutgoingContext(ctx, requestIDKey, id)
}

// RequestID returns the request id ctx carries, on the host or in a plugin.
func RequestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDCtx{}).(string); ok {
		return id
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(requestIDKey); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Log returns the plugin logger with the request id of ctx, for log lines
// about one request: shared.Log(ctx).Info("planned", "entry", entry).
func Log(ctx context.Context) hclog.Logger {
	l := Logger()
	if id := RequestID(ctx); id != "" {
		return l.With("request_id", id)
	}
	return l
}
