package api

import "testing"

func TestWantsEventStream(t *testing.T) {
	cases := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"application/json", false},
		{"text/event-stream", true},
		{"TEXT/EVENT-STREAM", true},
		{"Text/Event-Stream; charset=utf-8", true},
		{"text/event-stream;q=0", false},
		{"text/event-stream; q=0.0", false},
		{"application/json, text/event-stream", false}, // a tie is JSON
		{"text/event-stream, application/json;q=0.5", true},
		{"application/json;q=0.9, text/event-stream", true},
		{"text/event-stream;q=0.5, application/json", false},
		{"*/*", false},
		{"text/*", true}, // JSON is not acceptable at all
		{"text/*, application/json", false},
		{"text/event-stream, */*;q=0.1", true},
		{"text/html", false},
		{"garbage;;;, text/event-stream", true},
		{"text/event-stream;q=2", false}, // out of range: ignored
	}
	for _, tc := range cases {
		if got := wantsEventStream(tc.accept); got != tc.want {
			t.Errorf("Accept %q: stream %v, want %v", tc.accept, got, tc.want)
		}
	}
}
