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
		{}, {Insecure: true}, {ScriptAccessible: true}, {NoHostPrefix: true}, {Name: "__Host-x"}, {Name: "sid", Path: "/app"},
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

// The "__Host-" prefix is added to every cookie that qualifies for it, and
// only to those; the cookie an earlier version set without it is still
// read, after the prefixed one, and expired with it.
func TestCookie_hostPrefix(t *testing.T) {
	names := []struct {
		c      Cookie
		name   string
		legacy string
	}{
		{Cookie{}, "__Host-session", "session"},
		{Cookie{Name: "sid"}, "__Host-sid", "sid"},
		{Cookie{Name: "__Host-sid"}, "__Host-sid", ""},
		{Cookie{Name: "__Secure-sid"}, "__Secure-sid", ""},
		{Cookie{NoHostPrefix: true}, "session", ""},
		{Cookie{Insecure: true}, "session", ""},
		{Cookie{Domain: "example.com"}, "session", ""},
		{Cookie{Path: "/app"}, "session", ""},
		{Cookie{Path: "/"}, "__Host-session", "session"},
	}
	for _, tt := range names {
		d, err := tt.c.withDefaults()
		if err != nil {
			t.Fatalf("%+v: %v", tt.c, err)
		}
		if d.Name != tt.name || d.legacy != tt.legacy {
			t.Errorf("%+v: name %q, legacy %q; want %q, %q", tt.c, d.Name, d.legacy, tt.name, tt.legacy)
		}
		again, _ := d.withDefaults() // defaults applied twice change nothing
		if again.Name != d.Name || again.legacy != d.legacy {
			t.Errorf("%+v: defaults applied twice: %q, %q", tt.c, again.Name, again.legacy)
		}
	}

	d, _ := Cookie{}.withDefaults()
	reads := []struct{ header, want string }{
		{"__Host-session=new", "new"},
		{"session=old", "old"},
		{"session=old; __Host-session=new", "new"},
		{"__Host-session=new; session=old", "new"},
		{"__Host-session=; session=old", "old"},
		{"session=; __Host-session=", ""},
		{"other=x", ""},
	}
	for _, tt := range reads {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", tt.header)
		if got := d.Token(r); got != tt.want {
			t.Errorf("Cookie %q: token %q; want %q", tt.header, got, tt.want)
		}
		if got := (Cookie{}).Token(r); got != tt.want { // the zero value, undefaulted
			t.Errorf("Cookie %q, zero Cookie: token %q; want %q", tt.header, got, tt.want)
		}
	}
	plain, _ := Cookie{NoHostPrefix: true}.withDefaults()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "__Host-session=new")
	if got := plain.Token(r); got != "" {
		t.Errorf("NoHostPrefix reads the __Host- cookie: %q", got)
	}

	w := httptest.NewRecorder()
	d.ClearToken(w)
	cleared := map[string]bool{}
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 && c.Secure && c.Path == "/" {
			cleared[c.Name] = true
		}
	}
	if !cleared["__Host-session"] || !cleared["session"] || len(cleared) != 2 {
		t.Errorf("ClearToken expired %v; want __Host-session and session", cleared)
	}
}
