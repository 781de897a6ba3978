package kubernetes

import (
	"errors"
	"testing"

	"github.com/runhost/runhost/internal/executor"
)

func TestWorkspaceSubPath(t *testing.T) {
	w := WorkspaceVolume{Claim: "ws", Root: "/workspaces"}
	tests := []struct {
		source, want string
		ok           bool
	}{
		{"/workspaces/s1", "s1", true},
		{"/workspaces/a-b_c9", "a-b_c9", true},
		{"/workspaces/.tenants/alice/proj", ".tenants/alice/proj", true}, // a key's private namespace
		{"/workspaces/.tenants/team.a/p-1", ".tenants/team.a/p-1", true},
		{"/workspaces/.tenants/alice", "", false}, // a whole namespace, not a session
		{"/workspaces/.tenants", "", false},
		{"/workspaces/.tenants/alice/proj/sub", "", false},
		{"/workspaces/.tenants/../proj", "", false},
		{"/workspaces/other/alice/proj", "", false},
		{"/workspaces/a.b", "", false},    // not a name the store makes
		{"/workspaces/s1/sub", "", false}, // below the session: a run could swap it for a symlink
		{"/workspaces/..", "", false},
		{"/workspaces/.", "", false},
		{"/workspaces/", "", false},
		{"/workspaces", "", false},
		{"/workspacesX/s1", "", false},
		{"/elsewhere/s1", "", false},
		{"/workspaces/s\x001", "", false},
		{`/workspaces/s\1`, "", false},
	}
	for _, tt := range tests {
		got, err := w.subPath(tt.source)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("subPath(%q) = %q, %v; want %q, ok=%v", tt.source, got, err, tt.want, tt.ok)
		}
	}
	if _, err := (WorkspaceVolume{Root: "/workspaces"}).subPath("/workspaces/s1"); !errors.Is(err, executor.ErrUnsupported) {
		t.Errorf("no claim: %v, want ErrUnsupported", err)
	}
}

func TestPodMountsTheWorkspaceSessionOnly(t *testing.T) {
	e := &Executor{cfg: Config{Namespace: "runs", InitImage: "init", Workspace: WorkspaceVolume{Claim: "ws", Root: "/workspaces"}}}
	job := executor.Job{ID: "r1", Image: "img", User: "1000:1000", Workspace: &executor.Mount{Source: "/workspaces/s1", Target: "/workspaces/s1"},
		Limits: executor.Limits{MemoryBytes: 64 << 20, NanoCPUs: 1e9, TmpBytes: 1 << 20, RunDirBytes: 1 << 20}}
	pod, err := e.podFor(job)
	if err != nil {
		t.Fatal(err)
	}
	var claim string
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	if claim != "ws" {
		t.Errorf("claim %q, want ws", claim)
	}
	var found bool
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if m.Name == "workspace" {
			found = m.MountPath == "/workspaces/s1" && m.SubPath == "s1" && !m.ReadOnly
		}
	}
	if !found {
		t.Errorf("run container mounts %+v", pod.Spec.Containers[0].VolumeMounts)
	}
	for _, m := range pod.Spec.InitContainers[0].VolumeMounts {
		if m.Name == "workspace" {
			t.Error("the init container mounts the workspace")
		}
	}

	// A key's private session: the pod mounts it by its on-disk path, at
	// the name the caller used.
	job.Workspace = &executor.Mount{Source: "/workspaces/.tenants/alice/proj", Target: "/workspaces/proj"}
	pod, err = e.podFor(job)
	if err != nil {
		t.Fatal(err)
	}
	found = false
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if m.Name == "workspace" {
			found = m.MountPath == "/workspaces/proj" && m.SubPath == ".tenants/alice/proj" && !m.ReadOnly
		}
	}
	if !found {
		t.Errorf("run container mounts %+v", pod.Spec.Containers[0].VolumeMounts)
	}
}
