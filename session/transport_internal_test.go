package session

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The Cookie transport's fast path writes exactly what http.SetCookie
// would, for every configuration and token, and falls back to it for
// values that need sanitizing and for persistent cookies.
func TestCookie_SetToken_sameAsSetCookie(t *testing.T) {
	cookies := []Cookie{
		{}, {Insecure: true}, {ScriptAccessible: true}, {HostPrefix: true}, {Name: "sid", Path: "/app"},
		{Domain: "example.com"}, {SameSite: http.SameSiteStrictMode}, {SameSite: http.SameSiteNoneMode},
		{Partitioned: true}, {Path: "/a;b"}, {Domain: "bad domain"},
	}
	tokens := []string{"AbC-_09.n1", "x", "with space", "comma,semi;", "quote\"", "é", ""}
	for b := range 256 { // every byte, inside a token that is otherwise plain
		tokens = append(tokens, "Ab"+string([]byte{byte(b)})+"9.")
	}
	for _, c := range cookies {
		d, err := c.withDefaults()
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		for _, tok := range tokens {
			for _, maxAge := range []time.Duration{0, time.Hour} {
				got := httptest.NewRecorder()
				d.SetToken(got, tok, maxAge)
				want := httptest.NewRecorder()
				ck := d.cookie(tok)
				if maxAge > 0 {
					ck.MaxAge = 3600
					ck.Expires = time.Now().Add(maxAge).UTC()
				}
				http.SetCookie(want, ck)
				g, w := got.Header().Values("Set-Cookie"), want.Header().Values("Set-Cookie")
				if maxAge > 0 {
					// Expires is the clock's: compare up to it.
					g, w = trimExpires(g), trimExpires(w)
				}
				if len(g) != len(w) || (len(g) == 1 && g[0] != w[0]) {
					t.Errorf("%+v, token %q, maxAge %v: got %q; want %q", c, tok, maxAge, g, w)
				}
			}
		}
	}
}

func trimExpires(v []string) []string {
	out := make([]string, len(v))
	for i, s := range v {
		if j := indexOf(s, "; Expires="); j >= 0 {
			s = s[:j]
		}
		out[i] = s
	}
	return out
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
