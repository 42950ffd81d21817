package token_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/token"
)

// TestPreviousRelease_tokens: tokens sealed and signed by the previous
// release (testdata, with the test-only key rings that made them) still
// open, with every claim, and the session inside them (format 1) reads.
func TestPreviousRelease_tokens(t *testing.T) {
	issued := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return issued.Add(30 * time.Second) }
	for _, alg := range []token.Alg{token.XC20P, token.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			ring, err := token.ReadRingFile("testdata/previous-release-" + string(alg) + "-ring.json")
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile("testdata/previous-release-" + string(alg) + ".token")
			if err != nil {
				t.Fatal(err)
			}
			f := mustFormat(t, token.Config{Ring: ring, Now: now})
			c, err := f.Open(strings.TrimSpace(string(raw)))
			if err != nil {
				t.Fatalf("the previous release's %s token: %v", alg, err)
			}
			if c.UserID != "alice" || !c.Issued.Equal(issued) || !c.Expires.Equal(issued.Add(time.Hour)) ||
				!c.AuthTime.Equal(issued.Add(-time.Minute)) || !strings.HasSuffix(c.ID, ".n1") || c.Family != c.ID {
				t.Errorf("claims %+v", c)
			}
			// The session inside: a Manager on this codec reads its cart.
			mem, err := memstore.New(memstore.Config{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Close()
			rev, err := token.NewRevocations(t.Context(), token.RevocationConfig{Store: mem, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			defer rev.Close()
			codec, err := token.NewCodec(f, rev)
			if err != nil {
				t.Fatal(err)
			}
			if got := cartOf(t, codec, now, strings.TrimSpace(string(raw))); got != `["tea","milk"]` {
				t.Errorf("the cart in the token: %s; want [\"tea\",\"milk\"]", got)
			}
		})
	}
}

// cartOf returns the cart a Manager on codec reads from tok.
func cartOf(t *testing.T, codec *token.Codec, now func() time.Time, tok string) string {
	t.Helper()
	m, err := session.New(session.Config{Tokens: codec, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var cart []string
	var ok bool
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cart, ok = session.Value[[]string](session.From(r), "cart")
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok})
	h.ServeHTTP(httptest.NewRecorder(), r)
	if !ok {
		return "no cart"
	}
	b, _ := json.Marshal(cart)
	return string(b)
}
