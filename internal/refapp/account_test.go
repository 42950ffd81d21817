package refapp_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// devices is GET /sessions' answer.
type devices struct {
	Sessions []struct {
		Handle   string `json:"handle"`
		Current  bool   `json:"current"`
		Created  string `json:"created"`
		LastSeen string `json:"last_seen"`
		Client   string `json:"client"`
		IP       string `json:"ip"`
	} `json:"sessions"`
	Node string `json:"node"`
}

func (c *client) devices(n node) devices {
	c.t.Helper()
	rec := c.do(n, "GET", "/sessions", "")
	var d devices
	if rec.Code != 200 {
		c.t.Fatalf("GET /sessions: %d %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		c.t.Fatal(err)
	}
	return d
}

func TestSessions_listRevokeOthers(t *testing.T) {
	st := newStore(t)
	n1, n2 := newNode(t, st, "n1", nil), newNode(t, st, "n2", nil)
	laptop, phone, tablet, bob := newClient(t), newClient(t), newClient(t), newClient(t)
	laptop.login(n1, "alice")
	phone.login(n2, "alice")
	tablet.login(n2, "alice")
	bob.login(n1, "bob")

	d := laptop.devices(n2)
	if len(d.Sessions) != 3 || d.Node != "n2" {
		t.Fatalf("alice's sessions: %+v; want 3, from n2", d)
	}
	current := 0
	var phoneHandle string
	for _, s := range d.Sessions {
		if s.Current {
			current++
		}
		if len(s.Handle) != 16 || strings.Contains(laptop.getToken()+phone.getToken()+tablet.getToken(), s.Handle) {
			t.Errorf("handle %q: want 16 characters that are no part of a session ID", s.Handle)
		}
		if s.Created != "2030-01-02T03:04:05Z" || s.LastSeen != s.Created || s.IP != "" {
			t.Errorf("session %+v: want created and last seen at the epoch, no IP", s)
		}
	}
	if current != 1 {
		t.Errorf("%d sessions marked current; want 1", current)
	}
	for _, s := range phone.devices(n1).Sessions {
		if s.Current {
			phoneHandle = s.Handle
		}
	}

	// Another user's handle, or a made-up one: 404, nothing changes.
	bobHandle := bob.devices(n1).Sessions[0].Handle
	for _, h := range []string{bobHandle, "AAAAAAAAAAAAAAAA", "x", strings.Repeat("é", 40)} {
		expect(t, "DELETE another's handle", laptop.do(n1, "DELETE", "/sessions/"+h, ""), 404, `{"error":"no such session"}`)
	}
	expect(t, "bob after alice's attempts", bob.do(n2, "GET", "/cart", ""), 200, `{"user":"bob","items":[],"node":"n2"}`)

	expect(t, "DELETE the phone", laptop.do(n1, "DELETE", "/sessions/"+phoneHandle, ""), 200, `{"revoked":1}`)
	expect(t, "the phone afterwards", phone.do(n2, "GET", "/cart", ""), 401, `{"error":"not logged in"}`)
	expect(t, "DELETE the phone again", laptop.do(n1, "DELETE", "/sessions/"+phoneHandle, ""), 404, `{"error":"no such session"}`)

	expect(t, "logout-others", tablet.do(n1, "POST", "/logout-others", ""), 200, `{"revoked":1}`)
	expect(t, "the laptop afterwards", laptop.do(n2, "GET", "/cart", ""), 401, `{"error":"not logged in"}`)
	expect(t, "the tablet afterwards", tablet.do(n2, "GET", "/cart", ""), 200, `{"user":"alice","items":[],"node":"n2"}`)
	expect(t, "bob afterwards", bob.do(n2, "GET", "/cart", ""), 200, `{"user":"bob","items":[],"node":"n2"}`)

	// Its own handle: a logout, the cookie cleared.
	own := tablet.devices(n1).Sessions[0].Handle
	expect(t, "DELETE its own handle", tablet.do(n1, "DELETE", "/sessions/"+own, ""), 200, `{"revoked":1}`)
	if tablet.getToken() != "" {
		t.Error("deleting its own session left the cookie")
	}
	for _, path := range []string{"/sessions", "/sessions/" + own} {
		method := "GET"
		if path != "/sessions" {
			method = "DELETE"
		}
		expect(t, method+" "+path+" logged out", tablet.do(n1, method, path, ""), 401, `{"error":"not logged in"}`)
	}
	expect(t, "logout-others logged out", tablet.do(n1, "POST", "/logout-others", ""), 401, `{"error":"not logged in"}`)
}

func TestSessions_limit(t *testing.T) {
	st := newStore(t)
	evict := newNode(t, st, "n1", func(c *session.Config) { c.MaxSessionsPerUser = 2 })
	first, second, third := newClient(t), newClient(t), newClient(t)
	first.login(evict, "alice")
	second.login(evict, "alice")
	third.login(evict, "alice")
	alive := 0
	for _, c := range []*client{first, second, third} {
		if c.do(evict, "GET", "/cart", "").Code == 200 {
			alive++
		}
	}
	if alive != 2 || third.do(evict, "GET", "/cart", "").Code != 200 {
		t.Errorf("evict: %d sessions alive after 3 logins with a limit of 2; want 2, the newest among them", alive)
	}

	refuse := newNode(t, st, "n2", func(c *session.Config) {
		c.MaxSessionsPerUser = 2
		c.SessionLimit = session.RefuseNew
	})
	fourth := newClient(t)
	rec := fourth.do(refuse, "POST", "/login", `{"user":"alice"}`)
	expect(t, "refused login", rec, 409, `{"error":"too many sessions for this user: log out on another device first"}`)
	if fourth.getToken() != "" {
		t.Error("the refused login set a session cookie")
	}
	expect(t, "the refused client", fourth.do(refuse, "GET", "/cart", ""), 401, `{"error":"not logged in"}`)
}

func TestSessions_noUserIndex(t *testing.T) {
	n := newNode(t, struct{ store.Store }{newStore(t)}, "n1", nil) // Load, Save, Delete only
	c := newClient(t)
	c.login(n, "alice")
	for _, r := range [][2]string{{"GET", "/sessions"}, {"DELETE", "/sessions/AAAAAAAAAAAAAAAA"}, {"POST", "/logout-others"}} {
		if rec := c.do(n, r[0], r[1], ""); rec.Code != 501 {
			t.Errorf("%s %s without a per-user index: %d %s; want 501", r[0], r[1], rec.Code, rec.Body)
		}
	}
}

// A cart that outgrows what the store holds (memstore's MaxBytes here;
// Memcached's item size in production) is answered 413, not as an outage
// (503), and the stored cart is unchanged.
func TestCart_tooLargeForTheStore(t *testing.T) {
	small, err := memstore.New(memstore.Config{Now: fixedNow, CleanupInterval: -1, MaxBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { small.Close() })
	n := newNode(t, small, "n1", nil)
	c := newClient(t)
	c.login(n, "alice")
	item := strings.Repeat("x", 100)
	var rec *httptest.ResponseRecorder
	for range 5 {
		rec = c.do(n, "POST", "/cart", `{"item":"`+item+`"}`)
		if rec.Code != 200 {
			break
		}
	}
	expect(t, "a cart over the store's limit", rec, 413, `{"error":"session too large for the session store: keep less in it"}`)
	if rec.Header().Get("Retry-After") != "" {
		t.Error("a 413 with Retry-After")
	}
}
