package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runhost/runhost/internal/pluginwire/pluginpb"
	"github.com/runhost/runhost/shared"
)

// ErrConnectionLost means the host lost its connection to the plugin
// process mid-call: it crashed or stopped answering.
var ErrConnectionLost = errors.New("plugin connection lost")

// NewClient returns the host's view of the runtime served on c: calls go
// over c and honour the caller's context.
func NewClient(c *grpc.ClientConn) shared.Runtime {
	return &client{rpc: pluginpb.NewRuntimeClient(c)}
}

type client struct {
	rpc pluginpb.RuntimeClient
}

func (c *client) Describe(ctx context.Context) (shared.Description, error) {
	resp, err := c.rpc.Describe(ctx, &pluginpb.DescribeRequest{})
	if err != nil {
		return shared.Description{}, fromStatus(err)
	}
	return descriptionFromProto(resp), nil
}

func (c *client) Plan(ctx context.Context, req shared.RunRequest) (shared.Spec, error) {
	resp, err := c.rpc.Plan(ctx, planRequestToProto(req))
	if err != nil {
		return shared.Spec{}, fromStatus(err)
	}
	return specFromProto(resp.GetSpec()), nil
}

// fromStatus turns a gRPC status back into the SDK's errors.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return shared.Invalidf("%s", st.Message())
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

// Conversions of what the host receives and sends; the plugin's side has
// the other direction (package shared).

func descriptionFromProto(p *pluginpb.DescribeResponse) shared.Description {
	d := shared.Description{
		Name:        p.GetName(),
		Aliases:     p.GetAliases(),
		Description: p.GetDescription(),
	}
	for _, c := range p.GetCapabilities() {
		d.Capabilities = append(d.Capabilities, shared.Capability(c))
	}
	for _, v := range p.GetVersions() {
		d.Versions = append(d.Versions, shared.Version{
			Version: v.GetVersion(),
			Image:   v.GetImage(),
			Default: v.GetDefault(),
			SelfTest: shared.SelfTest{
				Code:           v.GetSelfTest().GetCode(),
				ExpectedStdout: v.GetSelfTest().GetExpectedStdout(),
			},
		})
	}
	return d
}

func planRequestToProto(r shared.RunRequest) *pluginpb.PlanRequest {
	return &pluginpb.PlanRequest{
		Version:      r.Version,
		VersionImage: r.VersionImage,
		Code:         r.Code,
		Files:        filesToProto(r.Files),
		Entry:        r.Entry,
		Args:         r.Args,
		Env:          r.Env,

		Packages:   r.Packages,
		Image:      r.Image,
		Command:    &pluginpb.Command{Argv: r.Command.Argv, Shell: r.Command.Shell},
		Dockerfile: r.Dockerfile,
		BuildArgs:  r.BuildArgs,

		Interpreter: r.Interpreter,
	}
}

func specFromProto(p *pluginpb.Spec) shared.Spec {
	s := shared.Spec{
		Image:   p.GetImage(),
		Files:   filesFromProto(p.GetFiles()),
		Command: p.GetCommand(),
		Env:     p.GetEnv(),
		WorkDir: p.GetWorkDir(),
		Limits: shared.Limits{
			Timeout:     time.Duration(p.GetLimits().GetTimeoutMs()) * time.Millisecond,
			MemoryBytes: p.GetLimits().GetMemoryBytes(),
			CPUs:        p.GetLimits().GetCpus(),
		},
	}
	if i := p.GetInstall(); i != nil {
		s.Install = &shared.Install{Command: i.GetCommand(), Files: filesFromProto(i.GetFiles()), Env: i.GetEnv(), OutputDir: i.GetOutputDir(), Network: i.GetNetwork()}
	}
	if b := p.GetBuild(); b != nil {
		s.Build = &shared.Build{Dockerfile: b.GetDockerfile(), Context: filesFromProto(b.GetContext()), BuildArgs: b.GetBuildArgs(), Cmd: b.GetCmd(), Args: b.GetArgs()}
	}
	if k := p.GetKernel(); k != nil {
		s.Kernel = &shared.Kernel{Protocol: k.GetProtocol(), Driver: shared.File{Path: k.GetDriver().GetPath(), Content: k.GetDriver().GetContent()}, Command: k.GetCommand()}
	}
	return s
}

func filesToProto(files []shared.File) []*pluginpb.File {
	out := make([]*pluginpb.File, 0, len(files))
	for _, f := range files {
		out = append(out, &pluginpb.File{Path: f.Path, Content: f.Content})
	}
	return out
}

func filesFromProto(files []*pluginpb.File) []shared.File {
	out := make([]shared.File, 0, len(files))
	for _, f := range files {
		out = append(out, shared.File{Path: f.GetPath(), Content: f.GetContent()})
	}
	return out
}
