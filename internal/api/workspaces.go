package api

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/workspace"
)

// The files API: the workspace volume as the host sees it, with the same
// path rules as runs and no symlink ever followed. {session} is a
// workspace name, resolved for the caller (workspace.Store.Resolve): its
// own, or a shared one it is granted; another key's name is the same 404 as
// a name that does not exist.
//
//	GET    /workspaces                          the names the caller reaches
//	PUT    /workspaces/{session}/files/{path}   raw body
//	GET    /workspaces/{session}/files/{path}   download
//	GET    /workspaces/{session}/files/?list    names, types, sizes, mtimes
//	DELETE /workspaces/{session}/files/{path}
//	DELETE /workspaces/{session}
func (s *Server) workspaceRoutes() {
	s.echo.GET("/workspaces", s.listWorkspaces)
	g := s.echo.Group("/workspaces/:session")
	g.PUT("/files/*", s.putFile)
	g.GET("/files/*", s.getFile)
	g.DELETE("/files/*", s.deleteFile)
	g.DELETE("", s.deleteWorkspaceSession)
}

// FileList is the answer of GET /workspaces/{session}/files/?list.
type FileList struct {
	Session string            `json:"session"`
	Files   []workspace.Entry `json:"files"`
}

// WorkspaceList is the answer of GET /workspaces.
type WorkspaceList struct {
	Workspaces []workspace.Workspace `json:"workspaces"`
}

func (s *Server) listWorkspaces(c echo.Context) error {
	names, err := s.workspaces.Names(caller(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, WorkspaceList{Workspaces: names})
}

// session resolves the {session} of the route for the caller.
func (s *Server) session(c echo.Context) (workspace.Ref, error) {
	name := c.Param("session")
	if err := workspace.CheckSession(name); err != nil {
		return workspace.Ref{}, err
	}
	return s.workspaces.Resolve(caller(c), name)
}

// filePath is the {path} part, unescaped once (echo leaves it escaped).
func filePath(c echo.Context) (string, error) {
	p, err := url.PathUnescape(c.Param("*"))
	if err != nil {
		return "", badRequest("unsafe_path", "path is not valid URL encoding")
	}
	return p, nil
}

func (s *Server) putFile(c echo.Context) error {
	p, err := filePath(c)
	if err != nil {
		return err
	}
	ref, err := s.session(c)
	if err != nil {
		return err
	}
	body := http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.MaxBodyBytes)
	n, err := s.workspaces.Put(ref, p, body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"path": p, "size": n})
}

func (s *Server) getFile(c echo.Context) error {
	p, err := filePath(c)
	if err != nil {
		return err
	}
	ref, err := s.session(c)
	if err != nil {
		return err
	}
	if _, ok := c.QueryParams()["list"]; ok {
		// The session, or a directory in it; paths stay relative to the
		// session, as the other routes take them.
		dir := ref
		dir.Dir = p
		list, err := s.workspaces.List(dir)
		if err != nil {
			return err
		}
		if list == nil {
			list = []workspace.Entry{}
		}
		for i := range list {
			list[i].Path = path.Join(p, list[i].Path)
		}
		return c.JSON(http.StatusOK, FileList{Session: ref.Session, Files: list})
	}
	if p == "" {
		return badRequest("invalid_request", "name a file, or list the session (or a directory: files/{dir}?list) with ?list")
	}
	f, info, err := s.workspaces.Open(ref, p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/octet-stream")
	h.Set(echo.HeaderContentLength, strconv.FormatInt(info.Size(), 10))
	c.Response().WriteHeader(http.StatusOK)
	_, err = io.Copy(c.Response(), io.LimitReader(f, info.Size()))
	return err
}

func (s *Server) deleteFile(c echo.Context) error {
	p, err := filePath(c)
	if err != nil {
		return err
	}
	ref, err := s.session(c)
	if err != nil {
		return err
	}
	if err := s.workspaces.Delete(ref, p); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// deleteWorkspaceSession removes the caller's session; one that does not
// exist (another key's included) is also a 204.
func (s *Server) deleteWorkspaceSession(c echo.Context) error {
	ref, err := s.session(c)
	if err != nil {
		return err
	}
	err = s.workspaces.DeleteSession(ref)
	if err != nil && !errors.Is(err, workspace.ErrNotFound) {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
