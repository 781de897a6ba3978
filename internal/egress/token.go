package egress

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// One proxy serves every run; what a run may reach travels with its
// connections as a token the host signed: the hosts, the run and an
// expiry, under HMAC-SHA256 with a secret the host made at start and gave
// only to the proxy. runhost-init's forwarder adds the token to the first
// request head of every connection (Proxy-Authorization: Bearer), so a run
// never needs to know it; a run that talks to the proxy's socket itself is
// still bound by the token it can find, which grants no more than its run.

// SecretEnv is the variable the proxy reads its secret from (hex).
const SecretEnv = "RUNHOST_EGRESS_SECRET"

// secretBytes is the size of a secret NewSecret makes, and the least Verify accepts.
const secretBytes = 32

// ErrBadToken is a token that is missing, forged, malformed or expired.
var ErrBadToken = errors.New("egress token refused")

// Claims are what a token grants.
type Claims struct {
	Run     string   `json:"run"`   // the run (or install, build, session) it was made for
	Hosts   []string `json:"hosts"` // patterns it may reach (CheckPattern's forms)
	Expires int64    `json:"exp"`   // unix seconds
}

// NewSecret returns a fresh random secret.
func NewSecret() []byte {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b)
	return b
}

// Sign returns the token for c: base64url(JSON) "." base64url(MAC).
func Sign(secret []byte, c Claims) string {
	payload, _ := json.Marshal(c)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(mac(secret, payload))
}

// Verify checks token's MAC and expiry against secret at now and returns
// what it grants.
func Verify(secret []byte, token string, now time.Time) (Claims, error) {
	if len(secret) < secretBytes {
		return Claims{}, fmt.Errorf("%w: the proxy has no secret", ErrBadToken)
	}
	p, s, ok := strings.Cut(token, ".")
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	sum, err2 := enc.DecodeString(s)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(sum, mac(secret, payload)) {
		return Claims{}, fmt.Errorf("%w: not signed by this host", ErrBadToken)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if now.Unix() >= c.Expires {
		return Claims{}, fmt.Errorf("%w: run %s's token expired at %s", ErrBadToken, c.Run, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}

func mac(secret, payload []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("runhost-egress/1\x00"))
	h.Write(payload)
	return h.Sum(nil)
}

// AuthHeader is the request header that carries a token to the proxy.
const AuthHeader = "Proxy-Authorization"

// tokenOf returns the token a request carries ("Bearer <token>"), or "".
func tokenOf(h http.Header) string {
	scheme, rest, _ := strings.Cut(h.Get(AuthHeader), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(rest)
}
