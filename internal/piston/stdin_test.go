package piston

import (
	"strings"
	"testing"
)

// The stdin queue refuses what would pass its bounds, and counts a message
// until the program has it.
func TestStdinQueueBounds(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		maxMsgs  int
		push     []int // message sizes
		taken    int   // messages the feeder takes and finishes first
		refused  int   // index of the first refused push; -1: none
		wantErr  string
	}{
		{"within both bounds", 10, 4, []int{3, 3, 4}, 0, -1, ""},
		{"bytes over", 10, 4, []int{6, 5}, 0, 1, "more than 10 bytes"},
		{"one message over", 10, 4, []int{11}, 0, 0, "more than 10 bytes"},
		{"messages over", 100, 2, []int{1, 1, 1}, 0, 2, "more than 2 messages"},
		{"empty messages count", 100, 2, []int{0, 0, 0}, 0, 2, "more than 2 messages"},
		{"room again once taken", 10, 4, []int{6, 4, 6}, 2, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newStdinQueue(tt.maxBytes, tt.maxMsgs)
			refused := -1
			for i, n := range tt.push {
				if i == len(tt.push)-1 {
					for range tt.taken {
						b, ok := q.next()
						if !ok {
							t.Fatal("queue closed")
						}
						q.done(len(b))
					}
				}
				if err := q.push(make([]byte, n)); err != nil {
					refused = i
					if !strings.Contains(err.Error(), tt.wantErr) {
						t.Errorf("error %q, want it to say %q", err, tt.wantErr)
					}
					break
				}
				if b, m := q.held(); b > tt.maxBytes || m > tt.maxMsgs {
					t.Fatalf("holds %d bytes in %d messages, over %d/%d", b, m, tt.maxBytes, tt.maxMsgs)
				}
			}
			if refused != tt.refused {
				t.Errorf("first refused push %d, want %d", refused, tt.refused)
			}
		})
	}
}

// A message the feeder took stays counted until it was written, so a
// program that does not read cannot make the host hold more.
func TestStdinQueueCountsTheMessageBeingWritten(t *testing.T) {
	q := newStdinQueue(10, 10)
	if err := q.push(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	b, _ := q.next() // the feeder is now stuck writing it to the program
	if err := q.push(make([]byte, 3)); err == nil {
		t.Error("a push beyond the bound was accepted while a message was being written")
	}
	q.done(len(b))
	if err := q.push(make([]byte, 3)); err != nil {
		t.Errorf("after the write: %v", err)
	}
	q.close()
	if _, ok := q.next(); !ok {
		t.Error("a closed queue dropped what it held")
	}
	if _, ok := q.next(); ok {
		t.Error("a closed, empty queue gave a message")
	}
}

func TestOriginPatterns(t *testing.T) {
	got := originPatterns([]string{"https://app.example", "http://[::1]:8080"})
	want := []string{"https://app.example", `http://\[::1\]:8080`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("originPatterns = %q, want %q", got, want)
	}
}
