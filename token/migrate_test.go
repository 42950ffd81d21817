package token_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/token"
)

// storeNodes starts n reference apps on one shared store that take over
// the sessions of c's tokens (session.Config.Previous.Tokens: c's ring,
// and revocations over c's revocation store).
func storeNodes(t *testing.T, c *cluster, st *memstore.Store, n int) []http.Handler {
	t.Helper()
	rev, err := token.NewRevocations(t.Context(), token.RevocationConfig{Store: c.mem, Now: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rev.Close() })
	codec, err := token.NewCodec(mustFormat(t, token.Config{Ring: c.ring, Now: c.clock.Now}), rev)
	if err != nil {
		t.Fatal(err)
	}
	var hs []http.Handler
	for i := range n {
		m, err := session.New(session.Config{Store: st, Now: c.clock.Now, Route: fmt.Sprint("s", i),
			ErrorHandler: refapp.ErrorHandler, Previous: &session.Previous{Tokens: codec}})
		if err != nil {
			t.Fatal(err)
		}
		h, err := refapp.New(refapp.Config{Node: fmt.Sprint("s", i), Strategy: "memory", Manager: m})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs
}

// TestMigrate_tokensToStore: an app moves from tokens to a store. Users
// logged in on the token nodes keep their carts on two store nodes, under
// concurrent adds through both (no update lost, one record per session);
// the cookie becomes the session ID; a token revoked before the switch
// stays revoked; a session destroyed after the switch is not taken over
// again from its old token.
func TestMigrate_tokensToStore(t *testing.T) {
	c := newCluster(t, token.XC20P, 1, nil)
	const users, adds = 8, 12
	tokens := make([]string, users)
	for u := range users {
		_, _, tokens[u] = c.do(0, "POST", "/login", fmt.Sprintf(`{"user":"u%d"}`, u), "")
		_, _, tokens[u] = c.do(0, "POST", "/cart", `{"item":"old"}`, tokens[u])
	}
	_, _, revoked := c.do(0, "POST", "/login", `{"user":"gone"}`, "")
	if code, _, _ := c.do(0, "POST", "/logout", "", revoked); code != 200 {
		t.Fatal("logout on the token node")
	}

	st, err := memstore.New(memstore.Config{Now: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	nodes := storeNodes(t, c, st, 2)
	ids := make([]string, users)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for u := range users {
		for a := range adds {
			wg.Go(func() {
				code, body, newTok := do(t, nodes[a%2], "POST", "/cart", `{"item":"x"}`, tokens[u])
				if code != 200 {
					t.Errorf("user %d, add %d with the old token: %d %s", u, a, code, body)
				}
				if newTok != "" && newTok != "-" {
					mu.Lock()
					ids[u] = newTok
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for u := range users {
		if ids[u] == "" || strings.Count(ids[u], ".") != 1 || len(ids[u]) > 60 {
			t.Fatalf("user %d: the store nodes sent %q; want a session ID", u, ids[u])
		}
		_, body, _ := do(t, nodes[u%2], "GET", "/cart", "", ids[u])
		if got := strings.Count(body, `"x"`); got != adds || !strings.Contains(body, `"old"`) {
			t.Errorf("user %d: cart %s; want the old item and %d new ones", u, body, adds)
		}
	}
	if n := st.Stats().Entries; n != 2*users {
		t.Errorf("%d records in the store; want %d (a session and its takeover mark per user)", n, 2*users)
	}
	if code, _, _ := do(t, nodes[0], "GET", "/cart", "", revoked); code != 401 {
		t.Errorf("a token revoked before the switch: %d; want 401", code)
	}
	// Logout with the new ID: the old token does not bring the session back.
	if code, _, _ := do(t, nodes[1], "POST", "/logout", "", ids[0]); code != 200 {
		t.Fatal("logout on a store node")
	}
	for i, h := range nodes {
		if code, _, _ := do(t, h, "GET", "/cart", "", tokens[0]); code != 401 {
			t.Errorf("the old token after the logout, on store node %d: %d; want 401", i, code)
		}
	}
}

// TestMigrate_storeToTokens: an app moves from a store to tokens. A stored
// session's cart arrives in the first token, the stored record is deleted
// (the old ID works no more), and a logout of the token session is final.
func TestMigrate_storeToTokens(t *testing.T) {
	var c *cluster
	now := func() time.Time { return c.clock.Now() } // the token nodes' clock, once they exist
	old, err := memstore.New(memstore.Config{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close() })
	c = newCluster(t, token.EdDSA, 2, func(cfg *session.Config) { cfg.Previous = &session.Previous{Store: old} })
	m, err := session.New(session.Config{Store: old, Route: "s0", ErrorHandler: refapp.ErrorHandler, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	storeNode, err := refapp.New(refapp.Config{Node: "s0", Strategy: "memory", Manager: m})
	if err != nil {
		t.Fatal(err)
	}
	_, _, id := do(t, storeNode, "POST", "/login", `{"user":"alice"}`, "")
	do(t, storeNode, "POST", "/cart", `{"item":"tea"}`, id)

	code, body, tok := c.do(0, "POST", "/cart", `{"item":"milk"}`, id)
	if code != 200 || !strings.Contains(body, `["tea","milk"]`) || tok == "" || tok == "-" {
		t.Fatalf("the stored session on a token node: %d %s, token %q", code, body, tok)
	}
	if code, body, _ := c.do(1, "GET", "/cart", "", tok); code != 200 || !strings.Contains(body, `["tea","milk"]`) {
		t.Errorf("the new token on the other node: %d %s", code, body)
	}
	if code, _, _ := c.do(1, "GET", "/cart", "", id); code != 401 {
		t.Errorf("the old session ID after the move: %d; want 401 (its record deleted)", code)
	}
	if code, _, _ := c.do(1, "POST", "/logout", "", tok); code != 200 {
		t.Fatal("logout on a token node")
	}
	c.refresh(0)
	if code, _, _ := c.do(0, "GET", "/cart", "", tok); code != 401 {
		t.Errorf("the token after its logout: %d; want 401", code)
	}
}
