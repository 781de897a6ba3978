package shared

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runhost/runhost/shared/internal/pluginpb"
)

// GRPCPlugin is the go-plugin glue for a Runtime. Plugin authors do not use it
// directly; Serve and the host do.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Runtime // set on the plugin side only
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the runtime service on the plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterRuntimeServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns the host's view of the plugin: a Runtime whose calls go
// over c and honour the caller's context.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &grpcClient{client: pluginpb.NewRuntimeClient(c)}, nil
}

// grpcClient runs on the host and forwards calls to the plugin process.
type grpcClient struct {
	client pluginpb.RuntimeClient
}

func (c *grpcClient) Describe(ctx context.Context) (Description, error) {
	resp, err := c.client.Describe(ctx, &pluginpb.DescribeRequest{})
	if err != nil {
		return Description{}, fromStatus(err)
	}
	return descriptionFromProto(resp), nil
}

func (c *grpcClient) Plan(ctx context.Context, req RunRequest) (Spec, error) {
	resp, err := c.client.Plan(ctx, planRequestToProto(req))
	if err != nil {
		return Spec{}, fromStatus(err)
	}
	return specFromProto(resp.GetSpec()), nil
}

// grpcServer runs in the plugin process and calls the author's Runtime.
type grpcServer struct {
	pluginpb.UnimplementedRuntimeServer
	impl Runtime
}

func (s *grpcServer) Describe(ctx context.Context, _ *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return descriptionToProto(d), nil
}

func (s *grpcServer) Plan(ctx context.Context, req *pluginpb.PlanRequest) (*pluginpb.PlanResponse, error) {
	spec, err := s.impl.Plan(ctx, planRequestFromProto(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginpb.PlanResponse{Spec: specToProto(spec)}, nil
}

// toStatus carries an error's kind across the wire as a gRPC status code.
func toStatus(err error) error {
	switch {
	case errors.Is(err, ErrInvalidRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Unknown, err.Error())
	}
}

// fromStatus turns a gRPC status back into the SDK's errors.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return &RequestError{Message: st.Message()}
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", st.Message(), context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("%s: %w", st.Message(), context.Canceled)
	case codes.Unavailable:
		return fmt.Errorf("%w: %s", ErrConnectionLost, st.Message())
	default:
		return errors.New(st.Message())
	}
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
