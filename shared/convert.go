package shared

import (
	"github.com/runhost/runhost/internal/pluginwire/pluginpb"
)

// Conversions of what the plugin sends and receives. Only this file and
// grpc.go know the generated code exists.

func descriptionToProto(d Description) *pluginpb.DescribeResponse {
	out := &pluginpb.DescribeResponse{
		Name:        d.Name,
		Aliases:     d.Aliases,
		Description: d.Description,
	}
	for _, c := range d.Capabilities {
		out.Capabilities = append(out.Capabilities, string(c))
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

func planRequestFromProto(p *pluginpb.PlanRequest) RunRequest {
	return RunRequest{
		Version:      p.GetVersion(),
		VersionImage: p.GetVersionImage(),
		Code:         p.GetCode(),
		Files:        filesFromProto(p.GetFiles()),
		Entry:        p.GetEntry(),
		Args:         p.GetArgs(),
		Env:          p.GetEnv(),

		Packages:   p.GetPackages(),
		Image:      p.GetImage(),
		Command:    Command{Argv: p.GetCommand().GetArgv(), Shell: p.GetCommand().GetShell()},
		Dockerfile: p.GetDockerfile(),
		BuildArgs:  p.GetBuildArgs(),

		Interpreter: p.GetInterpreter(),
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
	if k := s.Kernel; k != nil {
		out.Kernel = &pluginpb.Kernel{Protocol: k.Protocol, Driver: &pluginpb.File{Path: k.Driver.Path, Content: k.Driver.Content}, Command: k.Command}
	}
	return out
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
