package shared

import (
	"time"

	"github.com/runhost/runhost/shared/internal/pluginpb"
)

// Conversions between the SDK's types and the wire messages. Only this file
// and grpc.go know the generated code exists.

func descriptionToProto(d Description) *pluginpb.DescribeResponse {
	out := &pluginpb.DescribeResponse{
		Name:         d.Name,
		Aliases:      d.Aliases,
		Description:  d.Description,
		Capabilities: d.Capabilities,
	}
	for _, v := range d.Versions {
		out.Versions = append(out.Versions, &pluginpb.Version{
			Version: v.Version,
			Image:   v.Image,
			Default: v.Default,
			SelfTest: &pluginpb.SelfTest{
				Code:           v.SelfTest.Code,
				ExpectedStdout: v.SelfTest.ExpectedStdout,
			},
		})
	}
	return out
}

func descriptionFromProto(p *pluginpb.DescribeResponse) Description {
	d := Description{
		Name:         p.GetName(),
		Aliases:      p.GetAliases(),
		Description:  p.GetDescription(),
		Capabilities: p.GetCapabilities(),
	}
	for _, v := range p.GetVersions() {
		d.Versions = append(d.Versions, Version{
			Version: v.GetVersion(),
			Image:   v.GetImage(),
			Default: v.GetDefault(),
			SelfTest: SelfTest{
				Code:           v.GetSelfTest().GetCode(),
				ExpectedStdout: v.GetSelfTest().GetExpectedStdout(),
			},
		})
	}
	return d
}

func planRequestToProto(r RunRequest) *pluginpb.PlanRequest {
	return &pluginpb.PlanRequest{
		Version: r.Version,
		Code:    r.Code,
		Files:   filesToProto(r.Files),
		Entry:   r.Entry,
		Args:    r.Args,
		Env:     r.Env,
	}
}

func planRequestFromProto(p *pluginpb.PlanRequest) RunRequest {
	return RunRequest{
		Version: p.GetVersion(),
		Code:    p.GetCode(),
		Files:   filesFromProto(p.GetFiles()),
		Entry:   p.GetEntry(),
		Args:    p.GetArgs(),
		Env:     p.GetEnv(),
	}
}

func specToProto(s Spec) *pluginpb.Spec {
	return &pluginpb.Spec{
		Image:   s.Image,
		Files:   filesToProto(s.Files),
		Command: s.Command,
		Env:     s.Env,
		WorkDir: s.WorkDir,
		Limits: &pluginpb.Limits{
			TimeoutMs:   s.Limits.Timeout.Milliseconds(),
			MemoryBytes: s.Limits.MemoryBytes,
			Cpus:        s.Limits.CPUs,
		},
	}
}

func specFromProto(p *pluginpb.Spec) Spec {
	return Spec{
		Image:   p.GetImage(),
		Files:   filesFromProto(p.GetFiles()),
		Command: p.GetCommand(),
		Env:     p.GetEnv(),
		WorkDir: p.GetWorkDir(),
		Limits: Limits{
			Timeout:     time.Duration(p.GetLimits().GetTimeoutMs()) * time.Millisecond,
			MemoryBytes: p.GetLimits().GetMemoryBytes(),
			CPUs:        p.GetLimits().GetCpus(),
		},
	}
}

func filesToProto(files []File) []*pluginpb.File {
	out := make([]*pluginpb.File, 0, len(files))
	for _, f := range files {
		out = append(out, &pluginpb.File{Path: f.Path, Content: f.Content})
	}
	return out
}

func filesFromProto(files []*pluginpb.File) []File {
	out := make([]File, 0, len(files))
	for _, f := range files {
		out = append(out, File{Path: f.GetPath(), Content: f.GetContent()})
	}
	return out
}
