package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Grant is what the host policy file (RUNHOST_POLICY) lets one plugin ask
// for. Unset fields fall back to the host's settings; a grant can narrow
// the host's maxima, never widen them.
type Grant struct {
	// Images are patterns every image the plugin declares or plans must match.
	Images []string `json:"images,omitempty"`
	// CustomImages are patterns for images a request may name (custom-image
	// runtimes); they replace RUNHOST_ALLOWED_IMAGES for this plugin.
	CustomImages []string `json:"custom_images,omitempty"`
	// InstallNetwork lets install steps reach the egress proxy.
	InstallNetwork *bool `json:"install_network,omitempty"`
	// BuildNetwork false keeps the plugin's Dockerfile builds off the
	// network whatever the caller's key is granted (build-egress).
	BuildNetwork *bool   `json:"build_network,omitempty"`
	MaxTimeoutMS int64   `json:"max_timeout_ms,omitempty"`
	MaxMemoryMB  int64   `json:"max_memory_mb,omitempty"`
	MaxCPUs      float64 `json:"max_cpus,omitempty"`
}

// policyFile is the schema of RUNHOST_POLICY:
//
//	{"plugins": {"python": {"images": ["runhost/python:*"], "max_memory_mb": 512, "install_network": true}}}
type policyFile struct {
	Plugins map[string]Grant `json:"plugins"`
}

// LoadGrants reads a policy file strictly: unknown fields are an error, and
// a grant above the host's maxima is refused rather than clamped.
func LoadGrants(path string, host Config) (map[string]Grant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f policyFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for name, g := range f.Plugins {
		switch {
		case g.MaxTimeoutMS < 0 || time.Duration(g.MaxTimeoutMS)*time.Millisecond > host.MaxTimeout:
			return nil, fmt.Errorf("%s: plugin %q: max_timeout_ms %d is above the host's maximum (%d)", path, name, g.MaxTimeoutMS, host.MaxTimeout.Milliseconds())
		case g.MaxMemoryMB < 0 || g.MaxMemoryMB<<20 > host.MaxMemory:
			return nil, fmt.Errorf("%s: plugin %q: max_memory_mb %d is above the host's maximum (%d)", path, name, g.MaxMemoryMB, host.MaxMemory>>20)
		case g.MaxCPUs < 0 || g.MaxCPUs > host.MaxCPUs:
			return nil, fmt.Errorf("%s: plugin %q: max_cpus %g is above the host's maximum (%g)", path, name, g.MaxCPUs, host.MaxCPUs)
		}
	}
	return f.Plugins, nil
}

// maxima are the limits a runtime may reach, and who set them.
type maxima struct {
	timeout time.Duration
	memory  int64
	cpus    float64
	source  string // for messages: "the host's maximum" or the grant
}

func (p *Policy) maxima(runtime string) maxima {
	c := p.cfg
	m := maxima{timeout: c.MaxTimeout, memory: c.MaxMemory, cpus: c.MaxCPUs, source: "the host's maximum"}
	g, ok := p.cfg.Grants[runtime]
	if !ok {
		return m
	}
	m.source = fmt.Sprintf("the maximum RUNHOST_POLICY grants plugin %q", runtime)
	if g.MaxTimeoutMS > 0 {
		m.timeout = time.Duration(g.MaxTimeoutMS) * time.Millisecond
	}
	if g.MaxMemoryMB > 0 {
		m.memory = g.MaxMemoryMB << 20
	}
	if g.MaxCPUs > 0 {
		m.cpus = g.MaxCPUs
	}
	return m
}

// grantOf is the runtime's grant and whether the policy file names it.
func (p *Policy) grantOf(runtime string) (Grant, bool) {
	g, ok := p.cfg.Grants[runtime]
	return g, ok
}
