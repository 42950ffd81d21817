package token_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/token"
)

// cluster is several instances of the reference app on the stateless
// strategy, sharing one key ring and one revocation store, with a fake
// clock and refresh tickers the test fires.
type cluster struct {
	t     *testing.T
	clock *clock
	mem   *memstore.Store
	ring  *token.Ring
	nodes []*node
}

type node struct {
	name string
	rev  *token.Revocations
	m    *session.Manager
	h    http.Handler
	tick chan time.Time
	errs []error // from the Manager's ErrorHandler
}

func newCluster(t *testing.T, alg token.Alg, n int, edit func(*session.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, clock: newClock()}
	mem, err := memstore.New(memstore.Config{Now: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	c.mem = mem
	c.ring = mustRing(t, mustKey(t, alg, c.clock.Now()))
	for range n {
		c.addNode(edit)
	}
	return c
}

// addNode starts one more node.
func (c *cluster) addNode(edit func(*session.Config)) {
	t := c.t
	t.Helper()
	var err error
	ring := c.ring
	{
		nd := &node{name: string(rune('a' + len(c.nodes))), tick: make(chan time.Time)}
		nd.rev, err = token.NewRevocations(t.Context(), token.RevocationConfig{
			Store: c.mem, Now: c.clock.Now,
			NewTicker: func(time.Duration) (<-chan time.Time, func()) { return nd.tick, func() {} },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.rev.Close() })
		codec, err := token.NewCodec(mustFormat(t, token.Config{Ring: ring, Now: c.clock.Now}), nd.rev)
		if err != nil {
			t.Fatal(err)
		}
		cfg := session.Config{
			Tokens: codec, Now: c.clock.Now, Route: "n" + nd.name,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				nd.errs = append(nd.errs, err)
				refapp.ErrorHandler(w, r, err)
			},
		}
		if edit != nil {
			edit(&cfg)
		}
		if nd.m, err = session.New(cfg); err != nil {
			t.Fatal(err)
		}
		if nd.h, err = refapp.New(refapp.Config{Node: "n" + nd.name, Strategy: "token", Manager: nd.m}); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
	}
}

// refresh runs node i's refresh as its ticker would.
func (c *cluster) refresh(i int) {
	c.t.Helper()
	if err := c.nodes[i].rev.Refresh(c.t.Context()); err != nil {
		c.t.Fatal(err)
	}
}

// do sends a request with cookie (the session token, or "") to node i
// and returns the status, body, and the new token ("" if none was set,
// "-" if it was cleared).
func (c *cluster) do(i int, method, path, body, cookie string) (int, string, string) {
	c.t.Helper()
	return do(c.t, c.nodes[i].h, method, path, body, cookie)
}

func do(t testing.TB, h http.Handler, method, path, body, cookie string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest(method, "https://app.example"+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.Header.Set("Cookie", "__Host-session="+cookie)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	tok := ""
	for _, ck := range res.Cookies() {
		if ck.Name == "__Host-session" {
			tok = ck.Value
			if ck.MaxAge < 0 {
				tok = "-"
			}
		}
	}
	return res.StatusCode, string(b), tok
}

func TestManager_tokens_cartAcrossNodes(t *testing.T) {
	for _, alg := range []token.Alg{token.XC20P, token.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			c := newCluster(t, alg, 2, nil)
			code, body, tok := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
			if code != 200 || tok == "" || tok == "-" {
				t.Fatalf("login: %d %s, token %q", code, body, tok)
			}
			for i, item := range []string{"a", "b", "c"} {
				var newTok string
				code, body, newTok = c.do(i%2, "POST", "/cart", `{"item":"`+item+`"}`, tok)
				if code != 200 || newTok == "" {
					t.Fatalf("add %s on node %d: %d %s, token %q", item, i%2, code, body, newTok)
				}
				tok = newTok
			}
			code, body, _ = c.do(1, "GET", "/cart", "", tok)
			var cart struct {
				User  string   `json:"user"`
				Items []string `json:"items"`
			}
			json.Unmarshal([]byte(body), &cart)
			if code != 200 || cart.User != "alice" || strings.Join(cart.Items, ",") != "a,b,c" {
				t.Fatalf("cart on node b: %d %s; want alice with a,b,c", code, body)
			}
			if st := c.mem.Stats(); st.Entries != 0 {
				t.Errorf("the shared store holds %d records; want 0 (no session is stored)", st.Entries)
			}
		})
	}
}

// Logout revokes the token: at once on the node that logged out, on the
// others after their next refresh, which is the propagation delay.
func TestManager_tokens_logoutPropagates(t *testing.T) {
	c := newCluster(t, token.XC20P, 2, nil)
	_, _, tok := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
	code, body, cleared := c.do(0, "POST", "/logout", "", tok)
	if code != 200 || cleared != "-" {
		t.Fatalf("logout: %d %s, cookie %q; want 200 and a cleared cookie", code, body, cleared)
	}
	if code, _, _ := c.do(0, "GET", "/cart", "", tok); code != 401 {
		t.Errorf("the logged-out token on the same node: %d; want 401", code)
	}
	if code, _, _ := c.do(1, "GET", "/cart", "", tok); code != 200 {
		t.Errorf("the logged-out token on the other node before its refresh: %d; want 200 (the documented delay)", code)
	}
	c.refresh(1)
	if code, _, _ := c.do(1, "GET", "/cart", "", tok); code != 401 {
		t.Errorf("the logged-out token on the other node after its refresh: %d; want 401", code)
	}
	// A node started later reads every revocation when it starts.
	c.addNode(nil)
	if code, _, _ := c.do(2, "GET", "/cart", "", tok); code != 401 {
		t.Errorf("a node started after the logout: %d; want 401", code)
	}
}

func TestManager_tokens_logoutAll(t *testing.T) {
	c := newCluster(t, token.XC20P, 2, nil)
	_, _, phone := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
	_, _, laptop := c.do(1, "POST", "/login", `{"user":"alice"}`, "")
	_, _, bob := c.do(1, "POST", "/login", `{"user":"bob"}`, "")
	c.clock.Advance(time.Second)
	code, body, cleared := c.do(0, "POST", "/logout-all", "", phone)
	if code != 200 || cleared != "-" {
		t.Fatalf("logout-all: %d %s", code, body)
	}
	// How many tokens that ends is unknown: the answer says so.
	if want := `{"revoked":"all"}` + "\n"; body != want {
		t.Errorf("logout-all answered %q; want %q", body, want)
	}
	if code, _, _ := c.do(0, "GET", "/cart", "", laptop); code != 401 {
		t.Errorf("alice's other session on the same node: %d; want 401", code)
	}
	c.refresh(1)
	for name, tok := range map[string]string{"phone": phone, "laptop": laptop} {
		if code, _, _ := c.do(1, "GET", "/cart", "", tok); code != 401 {
			t.Errorf("alice's %s on the other node after its refresh: %d; want 401", name, code)
		}
	}
	if code, _, _ := c.do(1, "GET", "/cart", "", bob); code != 200 {
		t.Errorf("bob's session: %d; want 200", code)
	}
	c.clock.Advance(time.Second)
	_, _, again := c.do(1, "POST", "/login", `{"user":"alice"}`, "")
	if code, body, _ := c.do(0, "GET", "/cart", "", again); code != 200 {
		t.Errorf("alice logging in again after the cutoff: %d %s; want 200", code, body)
	}
}

// Renew (and Login) give the session a new ID inside a new token and
// revoke the old token.
func TestManager_tokens_renew(t *testing.T) {
	c := newCluster(t, token.XC20P, 1, nil)
	var ids []string
	h := c.nodes[0].m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch r.URL.Path {
		case "/set":
			s.Set("k", "v")
		case "/renew":
			s.Renew()
		}
		v, _ := session.Value[string](s, "k")
		ids = append(ids, s.Handle())
		io.WriteString(w, v)
	}))
	_, _, tok := do(t, h, "GET", "/set", "", "")
	_, body, renewed := do(t, h, "GET", "/renew", "", tok)
	if renewed == "" || renewed == tok || body != "v" {
		t.Fatalf("renew: body %q, token changed %v; want the value kept and a new token", body, renewed != tok)
	}
	if ids[0] == ids[1] {
		t.Errorf("the session kept its ID through Renew")
	}
	if _, body, _ := do(t, h, "GET", "/", "", tok); body != "" {
		t.Errorf("the token from before the renew still works: %q", body)
	}
	if _, body, _ := do(t, h, "GET", "/", "", renewed); body != "v" {
		t.Errorf("the renewed token: %q; want v", body)
	}
}

// A session too large for a cookie fails to save, with an error naming the
// size and the limit, instead of a cookie the browser drops.
func TestManager_tokens_sizeLimit(t *testing.T) {
	c := newCluster(t, token.XC20P, 1, nil)
	nd := c.nodes[0]
	h := nd.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("big", strings.Repeat("x", 3100))
		io.WriteString(w, "ok")
	}))
	code, _, tok := do(t, h, "GET", "/", "", "")
	if code != http.StatusRequestEntityTooLarge || tok != "" { // the reference app's answer
		t.Fatalf("got %d with token %q; want 413 and no cookie", code, tok)
	}
	var se *session.TokenSizeError
	if len(nd.errs) != 1 || !errors.As(nd.errs[0], &se) || !errors.Is(nd.errs[0], session.ErrTokenTooLarge) {
		t.Fatalf("errors %v; want one *session.TokenSizeError", nd.errs)
	}
	if se.Limit != 4096 || se.Size <= 4096 || !strings.Contains(se.Error(), "4096") {
		t.Errorf("got %v; want a size over the limit of 4096, both named", se)
	}
	// Just under the limit works.
	h = nd.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("big", strings.Repeat("x", 2880))
	}))
	if code, _, tok := do(t, h, "GET", "/", "", ""); code != 200 || tok == "" {
		t.Fatalf("a session that fits: %d; want 200 with a token", code)
	}
}

// Expiry and sliding renewal follow the Manager's timeouts: a token is
// re-issued once it is TouchInterval old, and dead after IdleTimeout.
func TestManager_tokens_expiry(t *testing.T) {
	c := newCluster(t, token.XC20P, 1, nil)
	_, _, tok := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
	c.clock.Advance(time.Minute)
	if code, _, again := c.do(0, "GET", "/cart", "", tok); code != 200 || again != "" {
		t.Fatalf("a minute later: %d, new token %v; want 200 and no new token", code, again != "")
	}
	c.clock.Advance(3 * time.Minute) // past the touch interval (3 minutes)
	code, _, slid := c.do(0, "GET", "/cart", "", tok)
	if code != 200 || slid == "" {
		t.Fatalf("after the touch interval: %d, new token %v; want a re-issued token", code, slid != "")
	}
	c.clock.Advance(session.DefaultIdleTimeout - time.Minute)
	if code, _, _ := c.do(0, "GET", "/cart", "", tok); code != 401 {
		t.Errorf("the first token after its idle timeout: %d; want 401", code)
	}
	if code, _, _ := c.do(0, "GET", "/cart", "", slid); code != 200 {
		t.Errorf("the re-issued token: %d; want 200", code)
	}
}

func TestManager_tokens_unsupported(t *testing.T) {
	c := newCluster(t, token.XC20P, 1, nil)
	m := c.nodes[0].m
	// Outside a request, no session is known: none listed.
	if infos, err := m.UserSessions(context.Background(), "alice"); err != nil || len(infos) != 0 {
		t.Errorf("UserSessions outside a request: %v, %v; want none", infos, err)
	}
	if err := m.DestroyHandle(context.Background(), "alice", "x"); !errors.Is(err, session.ErrUnsupported) {
		t.Errorf("DestroyHandle: %v; want ErrUnsupported", err)
	}
	mem, _ := memstore.New(memstore.Config{})
	defer mem.Close()
	if _, err := session.New(session.Config{Store: mem, Tokens: mustCodec(t, c)}); err == nil {
		t.Errorf("Store and Tokens together: got nil; want an error")
	}
}

// On tokens, GET /sessions lists the request's own session only, and POST
// /logout-others revokes every token of the user but gives the caller a new
// one.
func TestManager_tokens_accountRoutes(t *testing.T) {
	c := newCluster(t, token.EdDSA, 2, nil)
	_, _, phone := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
	_, _, laptop := c.do(1, "POST", "/login", `{"user":"alice"}`, "")
	code, body, _ := c.do(0, "GET", "/sessions", "", phone)
	if code != 200 || strings.Count(body, `"handle"`) != 1 || !strings.Contains(body, `"current":true`) {
		t.Errorf("GET /sessions: %d %s; want the request's own session, current", code, body)
	}
	c.clock.Advance(time.Second)
	code, body, renewed := c.do(0, "POST", "/logout-others", "", phone)
	if code != 200 || body != `{"revoked":"all"}`+"\n" || renewed == "" || renewed == "-" {
		t.Fatalf("logout-others: %d %s, new token %q", code, body, renewed)
	}
	c.refresh(1)
	for i := range 2 {
		if code, _, _ := c.do(i, "GET", "/cart", "", laptop); code != 401 {
			t.Errorf("the laptop on node %d: %d; want 401", i, code)
		}
		if code, _, _ := c.do(i, "GET", "/cart", "", phone); code != 401 {
			t.Errorf("the phone's old token on node %d: %d; want 401", i, code)
		}
		if code, body, _ := c.do(i, "GET", "/cart", "", renewed); code != 200 {
			t.Errorf("the phone's new token on node %d: %d %s; want 200", i, code, body)
		}
	}
}

func mustCodec(t *testing.T, c *cluster) *token.Codec {
	t.Helper()
	f, _ := newFormat(t, token.XC20P, c.clock)
	codec, err := token.NewCodec(f, c.nodes[0].rev)
	if err != nil {
		t.Fatal(err)
	}
	return codec
}

// Every rejected token gets the same answer: the client learns nothing of
// why.
func TestManager_tokens_oneAnswerForEveryRejection(t *testing.T) {
	for _, alg := range []token.Alg{token.XC20P, token.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			c := newCluster(t, alg, 1, nil)
			_, _, tok := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
			_, _, revoked := c.do(0, "POST", "/login", `{"user":"bob"}`, "")
			c.do(0, "POST", "/logout", "", revoked)
			other, _ := newFormat(t, alg, c.clock)
			bad := map[string]string{
				"tampered":     tok[:len(tok)-6] + "AAAAAA",
				"another key":  mustSeal(t, other, claims(t, c.clock.Now())),
				"revoked":      revoked,
				"garbage":      "not a token",
				"oversized":    strings.Repeat("A", 5000),
				"many dots":    strings.Repeat(".", 4000),
				"alg none JWT": "eyJhbGciOiJub25lIiwidHlwIjoic2Vzc2lvbitqd3QifQ.eyJzdWIiOiJhbGljZSJ9.",
			}
			want := ""
			for name, b := range bad {
				code, body, _ := c.do(0, "GET", "/cart", "", b)
				if code != 401 {
					t.Errorf("%s: %d; want 401", name, code)
				}
				if want == "" {
					want = body
				} else if body != want {
					t.Errorf("%s: body %q; want the same answer as the others, %q", name, body, want)
				}
			}
		})
	}
}

// With tokens, two concurrent requests of one session that both change it
// do not merge: each answers with its own token, and the client keeps the
// last one, so one change is lost. (The stores merge them; see
// session's lost-update tests.) This test pins the documented behaviour.
func TestManager_tokens_concurrentUpdatesLost(t *testing.T) {
	c := newCluster(t, token.XC20P, 2, nil)
	_, _, tok := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
	// Both requests carry the same token, as two tabs would.
	_, bodyA, tokA := c.do(0, "POST", "/cart", `{"item":"a"}`, tok)
	_, bodyB, tokB := c.do(1, "POST", "/cart", `{"item":"b"}`, tok)
	if !strings.Contains(bodyA, `["a"]`) || !strings.Contains(bodyB, `["b"]`) {
		t.Fatalf("answers %s and %s; want each request to see only its own item", bodyA, bodyB)
	}
	for _, last := range []string{tokA, tokB} {
		_, body, _ := c.do(0, "GET", "/cart", "", last)
		if strings.Contains(body, `"a","b"`) || strings.Contains(body, `"b","a"`) {
			t.Errorf("a token holds both items (%s): the updates merged, which tokens cannot do", body)
		}
	}
}

// When the revocation store is down, a logout fails visibly (503, like a
// store failure) instead of pretending to have ended the session.
func TestManager_tokens_revocationStoreDown(t *testing.T) {
	c := newCluster(t, token.XC20P, 1, nil)
	_, _, tok := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
	c.mem.Close()
	code, body, cleared := c.do(0, "POST", "/logout", "", tok)
	if code != 503 || cleared != "" {
		t.Fatalf("logout with the revocation store down: %d %s, cookie %q; want 503 and the cookie left alone", code, body, cleared)
	}
	if err := c.nodes[0].errs[0]; !errors.Is(err, session.ErrStore) || !errors.Is(err, session.ErrToken) {
		t.Errorf("error %v; want it to wrap ErrStore and ErrToken", err)
	}
	if code, _, _ := c.do(0, "GET", "/cart", "", tok); code != 200 {
		t.Errorf("reads still work from the token: %d; want 200", code)
	}
	if code, _, _ := c.do(0, "POST", "/logout-all", "", tok); code != 503 {
		t.Errorf("logout-all with the revocation store down: %d; want 503", code)
	}
	if _, err := session.New(session.Config{Tokens: mustCodec(t, c), FailOpen: true}); err == nil {
		t.Error("FailOpen with Tokens: got nil; want an error")
	}
}

// A token renewed on another node before a logout's revocation reached it
// is revoked too once it does: Renew keeps the session's family, and a
// logout revokes the family.
func TestManager_tokens_renewInTheWindowStillRevoked(t *testing.T) {
	c := newCluster(t, token.XC20P, 2, nil)
	renew := c.nodes[1].m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Renew()
		io.WriteString(w, session.From(r).UserID())
	}))
	_, _, tok := c.do(0, "POST", "/login", `{"user":"alice"}`, "")
	c.do(0, "POST", "/logout", "", tok)
	// Node b has not refreshed: it still takes the token, and renews it.
	_, body, renewed := do(t, renew, "GET", "/", "", tok)
	if body != "alice" || renewed == "" || renewed == "-" {
		t.Fatalf("renew on b inside the window: %q, token %q; want alice and a new token", body, renewed)
	}
	c.refresh(1)
	for i := range c.nodes {
		if code, _, _ := c.do(i, "GET", "/cart", "", renewed); code != 401 {
			t.Errorf("the token renewed inside the window, on node %d after the refresh: %d; want 401", i, code)
		}
	}
	// Without a logout, Renew keeps the session working and retires only
	// the old token.
	_, _, tok = c.do(0, "POST", "/login", `{"user":"bob"}`, "")
	_, _, renewed = do(t, renew, "GET", "/", "", tok)
	c.refresh(0)
	if code, _, _ := c.do(0, "GET", "/cart", "", renewed); code != 200 {
		t.Errorf("the renewed token: %d; want 200", code)
	}
	if code, _, _ := c.do(0, "GET", "/cart", "", tok); code != 401 {
		t.Errorf("the token before the renew: %d; want 401", code)
	}
}
