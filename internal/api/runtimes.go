package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/shared"
)

// Runtime is one entry of GET /runtimes.
type Runtime struct {
	Name         string              `json:"name"`
	Aliases      []string            `json:"aliases"`
	Description  string              `json:"description"`
	Versions     []Version           `json:"versions"`
	Capabilities []shared.Capability `json:"capabilities"`
	Plugin       PluginRef           `json:"plugin"`
	// ImageAliases (runtimes that take an image or a Dockerfile): image
	// names and the images this host runs for them (RUNHOST_IMAGE_ALIASES).
	ImageAliases map[string]string `json:"image_aliases,omitempty"`
}

// PluginRef is the plugin process serving a runtime.
type PluginRef struct {
	Path     string `json:"path"`
	SHA256   string `json:"sha256"`
	Protocol int    `json:"protocol"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
}

// Version is one version of a runtime.
type Version struct {
	Version   string    `json:"version"`
	Image     string    `json:"image"`
	Default   bool      `json:"default"`
	Installed bool      `json:"installed"`
	SelfTest  *SelfTest `json:"self_test,omitempty"` // the last result; absent until run
}

// SelfTest is the last result of a version's self-test.
type SelfTest struct {
	Passed    bool      `json:"passed"`
	Expected  string    `json:"expected"`
	Got       string    `json:"got"`
	CheckedAt time.Time `json:"checked_at"`
}

func runtimeJSON(info runner.RuntimeInfo) Runtime {
	rt := Runtime{
		Name:         info.Name,
		Aliases:      nonNil(info.Aliases),
		Description:  info.Description.Description,
		Capabilities: nonNil(info.Capabilities),
		Versions:     []Version{},
		ImageAliases: info.ImageAliases,
		Plugin: PluginRef{
			Path: info.Plugin.Path, SHA256: info.Plugin.Checksum, Protocol: info.Plugin.Protocol,
			State: string(info.Plugin.State), Reason: info.Plugin.Reason,
		},
	}
	for _, v := range info.Versions {
		ver := Version{
			Version:   v.Version,
			Image:     v.Image,
			Default:   v.Default,
			Installed: info.Installed[v.Version],
		}
		if st, ok := info.SelfTests[v.Version]; ok {
			ver.SelfTest = &SelfTest{Passed: st.Passed, Expected: st.Expected, Got: st.Got, CheckedAt: st.CheckedAt}
		}
		rt.Versions = append(rt.Versions, ver)
	}
	return rt
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) listRuntimes(c echo.Context) error {
	out := []Runtime{}
	for _, info := range s.runner.Runtimes(c.Request().Context()) {
		out = append(out, runtimeJSON(info))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getRuntime(c echo.Context) error {
	info, err := s.runner.Runtime(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, runtimeJSON(info))
}
