package balancer

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/session/sid"
)

var testKey = bytes.Repeat([]byte("k"), MinAffinityKeyLen)

func withAffinity(c *Config) {
	c.Affinity = AffinityCookie{Enabled: true, Key: testKey}
}

// affinityCookie returns the affinity cookie set by w, or nil.
func affinityCookie(t testing.TB, h http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == DefaultAffinityCookie {
			return c
		}
	}
	return nil
}

func TestAffinityCookie(t *testing.T) {
	b, nodes, _, rec := newTestBalancer(t, three, withAffinity)
	w := do(b, "GET", "/", "")
	c := affinityCookie(t, w.Header())
	if c == nil {
		t.Fatalf("no affinity cookie in %v", w.Header())
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Errorf("cookie %v; want HttpOnly, Secure, SameSite=Lax, Path=/", c)
	}
	node := w.Header().Get("X-Node")
	// The value is random base64url and MACs: a two-letter name like "n2"
	// turns up in it by chance (about 1 in 25 runs), so look for the name
	// as a whole field, and for the address anywhere.
	for _, n := range nodes {
		if slices.Contains(strings.Split(c.Value, "."), n.name) || strings.Contains(c.Value, n.addr) {
			t.Errorf("cookie value %q reveals node %s (%s)", c.Value, n.name, n.addr)
		}
	}
	for range 20 {
		w := do(b, "GET", "/", "", c)
		if got := w.Header().Get("X-Node"); got != node {
			t.Fatalf("with its cookie the user went to %s; want %s", got, node)
		}
		if affinityCookie(t, w.Header()) != nil {
			t.Fatal("the cookie was sent again although it was valid")
		}
	}
	if got := rec.count("Affinity hit"); got != 20 {
		t.Errorf("hits = %v; want 20", got)
	}

	// Another balancer instance with the same key honours the cookie.
	b2, _, _, _ := newTestBalancer(t, nil, func(cfg *Config) {
		withAffinity(cfg)
		for _, n := range three {
			cfg.Backends = append(cfg.Backends, nodes[n].backend())
		}
	})
	if got := do(b2, "GET", "/", "", c).Header().Get("X-Node"); got != node {
		t.Errorf("a second instance sent the user to %s; want %s", got, node)
	}

	// The node dies: the user is re-homed and gets a new cookie naming
	// the new node, which then sticks.
	nodes[node].stop()
	b.CheckHealth(t.Context())
	w = do(b, "GET", "/", "", c)
	moved := w.Header().Get("X-Node")
	c2 := affinityCookie(t, w.Header())
	if moved == node || c2 == nil {
		t.Fatalf("after its node died: node %s, new cookie %v; want another node and a new cookie", moved, c2)
	}
	if got := do(b, "GET", "/", "", c2).Header().Get("X-Node"); got != moved {
		t.Errorf("with the new cookie the user went to %s; want %s", got, moved)
	}
	if got := do(b2, "GET", "/", "", c2).Header().Get("X-Node"); got != moved {
		t.Errorf("the second instance sent the re-homed user to %s; want %s", got, moved)
	}
}

func TestAffinityCookie_rejectsForgeries(t *testing.T) {
	b, _, _, rec := newTestBalancer(t, three, withAffinity)
	c := affinityCookie(t, do(b, "GET", "/", "").Header())
	other := signer{key: bytes.Repeat([]byte("o"), MinAffinityKeyLen)}
	key, id, ok := b.signer.verify(c.Value)
	if !ok {
		t.Fatal("the balancer rejects its own cookie")
	}
	flip := []byte(c.Value)
	flip[len(flip)-2] ^= 1
	forgeries := map[string]string{
		"flipped MAC":  string(flip),
		"other key":    other.sign(key, id),
		"other node":   c.Value[:affKeyLen+1] + b.signer.nodeID("n9") + c.Value[affKeyLen+1+nodeIDLen:],
		"truncated":    c.Value[:len(c.Value)-1],
		"empty":        "",
		"route tag id": newID(t, "n1"),
	}
	for name, v := range forgeries {
		w := do(b, "GET", "/", "", &http.Cookie{Name: DefaultAffinityCookie, Value: v})
		if affinityCookie(t, w.Header()) == nil {
			t.Errorf("%s: accepted (no new cookie issued)", name)
		}
	}
	if got := rec.count("Affinity hit"); got != 0 {
		t.Errorf("hits = %v; want 0", got)
	}
}

func TestAffinityCookie_sessionTagWins(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, withAffinity)
	c := affinityCookie(t, do(b, "GET", "/", "").Header())
	_, id, _ := b.signer.verify(c.Value)
	other := "n1"
	if b.set.Load().byID[id].name == "n1" {
		other = "n2"
	}
	w := do(b, "GET", "/", "", c, &http.Cookie{Name: "__Host-session", Value: newID(t, other)})
	if got := w.Header().Get("X-Node"); got != other {
		t.Errorf("with a session tagged %s and an affinity cookie for another node, went to %s", other, got)
	}
}

func TestCookieValue(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; session=abc.n1 ; b=2", "session=second"}}
	if v, ok := cookieValue(h, "session"); !ok || v != "abc.n1" {
		t.Errorf("cookieValue = %q, %v; want abc.n1, true", v, ok)
	}
	if v, ok := cookieValue(http.Header{"Cookie": {`x=1;session="q.n2"`}}, "session"); !ok || v != "q.n2" {
		t.Errorf("quoted cookieValue = %q, %v; want q.n2, true", v, ok)
	}
	if _, ok := cookieValue(http.Header{"Cookie": {"sessionx=1; xsession=2"}}, "session"); ok {
		t.Error("found a cookie by a prefix or suffix of its name")
	}
}

func TestParseRouted(t *testing.T) {
	id := newID(t, "node-7")
	random, route, ok := parseRouted(id)
	if !ok || route != "node-7" || random+".node-7" != id {
		t.Errorf("parseRouted(id) = %q, %q, %v", random, route, ok)
	}
	for _, v := range []string{newID(t, ""), id + "!", id[:42] + "." + "node-7", strings.Repeat("A", 43) + "." + strings.Repeat("r", sid.MaxRouteLen+1)} {
		if _, _, ok := parseRouted(v); ok {
			t.Errorf("parseRouted(%q) ok; want rejected", v)
		}
	}
}

func FuzzParseRouted(f *testing.F) {
	f.Add(strings.Repeat("A", 43) + ".n1")
	f.Add("")
	f.Add(".")
	f.Add(strings.Repeat("A", 43) + ".")
	f.Fuzz(func(t *testing.T, v string) {
		random, route, ok := parseRouted(v)
		if !ok {
			return
		}
		if random+"."+route != v || len(random) != sid.RandomLen || route == "" || sid.CheckRoute(route) != nil {
			t.Fatalf("parseRouted(%q) = %q, %q: not a split of a valid ID", v, random, route)
		}
		if sid.RouteOf(v) != route {
			t.Fatalf("parseRouted(%q) route %q; sid.RouteOf says %q", v, route, sid.RouteOf(v))
		}
	})
}

func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; session=abc.n1", "session")
	f.Add(`session="`, "session")
	f.Add(";;=;", "")
	f.Fuzz(func(t *testing.T, line, name string) {
		v, ok := cookieValue(http.Header{"Cookie": {line}}, name)
		if ok && !strings.Contains(line, name+"=") {
			t.Fatalf("cookieValue(%q, %q) found %q without %q in the header", line, name, v, name+"=")
		}
		if len(v) > len(line) {
			t.Fatalf("value longer than the header")
		}
	})
}

func FuzzVerifyAffinity(f *testing.F) {
	s := signer{key: testKey}
	good := s.sign(newKey(), s.nodeID("n1"))
	f.Add(good)
	f.Add("")
	f.Add(strings.Repeat(".", affLen))
	f.Fuzz(func(t *testing.T, v string) {
		key, id, ok := s.verify(v)
		if ok && s.sign(key, id) != v {
			t.Fatalf("verify accepted %q, which is not what sign makes of its parts", v)
		}
	})
}
