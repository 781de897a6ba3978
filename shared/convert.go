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

		Packages:   r.Packages,
		Image:      r.Image,
		Command:    &pluginpb.Command{Argv: r.Command.Argv, Shell: r.Command.Shell},
		Dockerfile: r.Dockerfile,
		BuildArgs:  r.BuildArgs,
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

		Packages:   p.GetPackages(),
		Image:      p.GetImage(),
		Command:    Command{Argv: p.GetCommand().GetArgv(), Shell: p.GetCommand().GetShell()},
		Dockerfile: p.GetDockerfile(),
		BuildArgs:  p.GetBuildArgs(),
	}
}

func specToProto(s Spec) *pluginpb.Spec {
	out := &pluginpb.Spec{
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
	if i := s.Install; i != nil {
		out.Install = &pluginpb.Install{Command: i.Command, Files: filesToProto(i.Files), Env: i.Env, OutputDir: i.OutputDir, Network: i.Network}
	}
	if b := s.Build; b != nil {
		out.Build = &pluginpb.Build{Dockerfile: b.Dockerfile, Context: filesToProto(b.Context), BuildArgs: b.BuildArgs, Cmd: b.Cmd, Args: b.Args}
	}
	return out
}

func specFromProto(p *pluginpb.Spec) Spec {
	s := Spec{
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
	if i := p.GetInstall(); i != nil {
		s.Install = &Install{Command: i.GetCommand(), Files: filesFromProto(i.GetFiles()), Env: i.GetEnv(), OutputDir: i.GetOutputDir(), Network: i.GetNetwork()}
	}
	if b := p.GetBuild(); b != nil {
		s.Build = &Build{Dockerfile: b.GetDockerfile(), Context: filesFromProto(b.GetContext()), BuildArgs: b.GetBuildArgs(), Cmd: b.GetCmd(), Args: b.GetArgs()}
	}
	return s
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
