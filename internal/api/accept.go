package api

import (
	"mime"
	"strconv"
	"strings"
)

// acceptQuality is the quality the Accept header gives mediaType: the q of
// the most specific range that matches it (type/subtype, then type/*,
// then */*), 1 when the header is empty, 0 when no range matches. Media
// types compare without case, as RFC 9110 says.
func acceptQuality(accept, mediaType string) float64 {
	if strings.TrimSpace(accept) == "" {
		return 1
	}
	typ, _, _ := strings.Cut(strings.ToLower(mediaType), "/")
	best, specificity := 0.0, -1
	for _, r := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
				continue
			}
		}
		rt, rs, _ := strings.Cut(mt, "/")
		s := -1
		switch {
		case mt == strings.ToLower(mediaType):
			s = 2
		case rt == typ && rs == "*":
			s = 1
		case mt == "*/*":
			s = 0
		}
		if s > specificity {
			best, specificity = q, s
		}
	}
	return best
}

// wantsEventStream reports whether the caller prefers server-sent events to
// JSON: text/event-stream acceptable and ranked above application/json (a
// tie, as in "application/json, text/event-stream", is JSON, the default).
func wantsEventStream(accept string) bool {
	sse := acceptQuality(accept, "text/event-stream")
	return strings.TrimSpace(accept) != "" && sse > 0 && sse > acceptQuality(accept, "application/json")
}
