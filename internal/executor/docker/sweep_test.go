package docker

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/api/types/volume"
)

// A sweep removes runhost's containers that are past their deadline, whose
// host process on this machine is gone, or that stopped long ago; it leaves
// the rest, and anything not runhost's.
func TestSweep(t *testing.T) {
	f := newFakeEngine()
	e := newTestExecutor(t, f)
	now := time.Now()
	hostname, _ := os.Hostname()
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	labels := func(instance, owner, deadline string) map[string]string {
		l := map[string]string{LabelManaged: "true", LabelInstance: instance, LabelOwner: owner}
		if deadline != "" {
			l[LabelDeadline] = deadline
		}
		return l
	}
	gone := hostname + "/4194305/12345" // no such pid: above Linux's pid_max
	other := "otherhost/1/1"            // another machine: only its deadline counts

	containers := []struct {
		name    string
		state   string
		created time.Duration // before now
		labels  map[string]string
		removed bool
	}{
		{"ours, due", "running", time.Hour, labels(e.instance, e.owner, unix(-time.Second)), true},
		{"ours, not due", "running", 0, labels(e.instance, e.owner, unix(time.Hour)), false},
		{"another instance's, not due", "running", 0, labels("other", other, unix(time.Hour)), false},
		{"another instance's, due", "running", time.Hour, labels("other", other, unix(-time.Second)), true},
		{"its host process is gone", "running", 0, labels("dead", gone, unix(time.Hour)), true},
		{"stopped long ago", "exited", 10 * time.Minute, labels(e.instance, e.owner, unix(time.Hour)), true},
		{"stopped just now", "exited", 0, labels(e.instance, e.owner, unix(time.Hour)), false},
		{"without a deadline", "running", 0, labels(e.instance, e.owner, ""), true},
		{"not runhost's", "running", time.Hour, map[string]string{LabelDeadline: unix(-time.Hour)}, false},
		{"unlabelled", "exited", time.Hour, nil, false},
	}
	for _, c := range containers {
		f.add(c.name, c.state, now.Add(-c.created), c.labels)
	}
	volumes := []struct {
		name    string
		labels  map[string]string
		removed bool
	}{
		{"egress of a gone host", map[string]string{LabelEgress: "true", LabelOwner: gone}, true},
		{"egress of this host", map[string]string{LabelEgress: "true", LabelOwner: e.owner}, false},
		{"install output, due", map[string]string{LabelInstallOutput: "true", LabelOwner: e.owner, LabelDeadline: unix(-time.Second)}, true},
		{"install output, not due", map[string]string{LabelInstallOutput: "true", LabelOwner: e.owner, LabelDeadline: unix(time.Hour)}, false},
		{"someone else's", map[string]string{LabelOwner: gone, LabelDeadline: unix(-time.Hour)}, false},
	}
	for _, v := range volumes {
		if _, err := f.VolumeCreate(context.Background(), volume.CreateOptions{Name: v.name, Labels: v.labels}); err != nil {
			t.Fatal(err)
		}
	}

	n, err := e.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range containers {
		got := f.byName(c.name)[0].removals
		if got != 0 != c.removed || got > 1 {
			t.Errorf("container %q removed %d times, want removed: %v", c.name, got, c.removed)
		}
		if c.removed {
			want++
		}
	}
	for _, v := range volumes {
		if got := slices.Contains(f.removedVol, v.name); got != v.removed {
			t.Errorf("volume %q removed: %v, want %v", v.name, got, v.removed)
		}
		if v.removed {
			want++
		}
	}
	if n != want {
		t.Errorf("sweep says it removed %d, want %d", n, want)
	}
}
