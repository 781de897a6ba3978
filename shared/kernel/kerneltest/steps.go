package kerneltest

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

// Step is one cell of a scenario and what it must produce. Steps run in
// order in one driver, so they share its state.
type Step struct {
	Name  string
	Code  string
	Check Check
}

// Check asserts what a cell produced.
type Check func(t *testing.T, c Cell)

// RunSteps runs the steps one after another in d, stops at the first step
// that fails, and fails if any message belonged to no cell.
func RunSteps(t *testing.T, d *Driver, steps []Step) {
	t.Helper()
	for _, s := range steps {
		c := d.Run(s.Code)
		t.Logf("%s: results %.300q, stdout %.300q, stderr %.300q, error %+v", s.Name, c.Texts(), c.Stdout, c.Stderr, c.Error)
		s.Check(t, c)
		if t.Failed() {
			t.Fatalf("step %q failed", s.Name)
		}
	}
	if stray := d.Stray(); len(stray) > 0 {
		t.Errorf("messages outside any cell: %q", stray)
	}
}

// OK wants no error and exactly these text/plain results.
func OK(texts ...string) Check {
	return func(t *testing.T, c Cell) {
		t.Helper()
		if c.Error != nil {
			t.Errorf("error %+v, want none", c.Error)
		}
		if got := c.Texts(); !slices.Equal(got, texts) && (len(got) != 0 || len(texts) != 0) {
			t.Errorf("results %q, want %q", got, texts)
		}
	}
}

// Output wants no error, no results and exactly this stdout and stderr.
func Output(stdout, stderr string) Check {
	return func(t *testing.T, c Cell) {
		t.Helper()
		OK()(t, c)
		if c.Stdout != stdout || c.Stderr != stderr {
			t.Errorf("stdout %q stderr %q, want %q and %q", c.Stdout, c.Stderr, stdout, stderr)
		}
	}
}

// Failed wants an error of this name whose traceback shows neither the
// driver's file nor ANSI colour.
func Failed(name, driverFile string) Check {
	return func(t *testing.T, c Cell) {
		t.Helper()
		if c.Error == nil || c.Error.Name != name {
			t.Fatalf("error %+v, want %s", c.Error, name)
		}
		for _, line := range c.Error.Traceback {
			if strings.Contains(line, driverFile) || strings.Contains(line, "\x1b[") {
				t.Errorf("traceback line %q shows the driver or ANSI colour", line)
			}
		}
	}
}

// All runs every check.
func All(checks ...Check) Check {
	return func(t *testing.T, c Cell) {
		t.Helper()
		for _, check := range checks {
			check(t, c)
		}
	}
}

// Has wants result i to have mime, as a string containing want.
func Has(i int, mime, want string) Check {
	return func(t *testing.T, c Cell) {
		t.Helper()
		if i >= len(c.Results) {
			t.Fatalf("result %d missing: %d results", i, len(c.Results))
		}
		if got := c.Results[i].Text(mime); !strings.Contains(got, want) {
			t.Errorf("result %d %s = %.200q, want it to contain %q", i, mime, got, want)
		}
	}
}

// Lacks wants result i (if there is one) without mime.
func Lacks(i int, mime string) Check {
	return func(t *testing.T, c Cell) {
		t.Helper()
		if i < len(c.Results) {
			if _, has := c.Results[i].Data[mime]; has {
				t.Errorf("result %d has %s: %.200s", i, mime, c.Results[i].Data[mime])
			}
		}
	}
}

// PNG wants result i to carry a base64 PNG as image/png.
func PNG(i int) Check {
	return func(t *testing.T, c Cell) {
		t.Helper()
		if i >= len(c.Results) {
			t.Fatalf("result %d missing: %d results", i, len(c.Results))
		}
		b, err := base64.StdEncoding.DecodeString(c.Results[i].Text("image/png"))
		if err != nil || !strings.HasPrefix(string(b), "\x89PNG\r\n\x1a\n") {
			t.Errorf("result %d image/png is not a base64 PNG (%d bytes, %v)", i, len(b), err)
		}
	}
}
