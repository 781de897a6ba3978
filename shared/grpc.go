package shared

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runhost/runhost/internal/pluginwire"
	"github.com/runhost/runhost/internal/pluginwire/pluginpb"
)

// The plugin's side of the protocol. The host's side is internal/pluginhost;
// each side converts the messages it receives and sends.

func init() {
	pluginwire.RegisterRuntime = func(s *grpc.Server, impl any) error {
		rt, ok := impl.(Runtime)
		if !ok {
			return fmt.Errorf("%T does not implement shared.Runtime", impl)
		}
		pluginpb.RegisterRuntimeServer(s, &grpcServer{impl: rt})
		return nil
	}
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
