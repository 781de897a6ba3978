package docker

import (
	"context"
	"io"
	"time"

	"github.com/docker/docker/pkg/stdcopy"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/frames"
)

// StartSession starts a session container with job's image, limits and
// mounts, attached: runs go over the attachment as frames
// (frames.Session). The job's command, files and stdin are ignored: runs
// bring their own.
func (e *Executor) StartSession(ctx context.Context, job executor.Job) (executor.Session, error) {
	if err := e.init.ensure(ctx, e.engine, e.labels(job.Labels, time.Hour)); err != nil {
		return nil, err
	}
	s := step{Job: job}
	if ws := job.Workspace; ws != nil {
		s.mounts = append(s.mounts, bindMount(*ws))
	}
	if job.Network != nil {
		// The forward starts with the session's first run and serves all
		// of them; its token lasts the session's lifetime.
		if err := e.withNetwork(ctx, &s); err != nil {
			return nil, err
		}
	}
	c, err := e.start(ctx, s)
	if err != nil {
		if c != nil {
			e.remove(ctx, c.id)
		}
		return nil, err
	}
	framed, pw := io.Pipe()
	go func() {
		// init's own complaints (before framing) are dropped: a session
		// reports failures per run, in frames.
		_, err := stdcopy.StdCopy(pw, io.Discard, c.stream.Reader)
		pw.CloseWithError(err)
	}()
	sess := frames.NewSession(c.stream.Conn, framed, func() {
		c.stream.Close()
		c.cancel()
		e.removeAsync(c.id)
	})
	if s.forward == nil {
		return sess, nil
	}
	sess.Forward(s.forward)
	return networkSession{sess}, nil
}

// networkSession is a granted session: every run gets the proxy
// variables and a network log.
type networkSession struct{ *frames.Session }

func (s networkSession) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	job.Env = executor.MergeEnv(job.Env, runProxyEnv)
	res, err := s.Session.Run(ctx, job)
	if err != nil {
		return res, err
	}
	job.Network = &executor.Network{}
	return withNetworkLog(job, res), nil
}
