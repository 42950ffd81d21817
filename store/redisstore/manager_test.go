package redisstore_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// TestManager_roundTrips counts the Redis round trips of whole requests
// through the session Manager: a request that does not use its session
// costs none, a read costs one, a change one more, an unchanged request
// with no touch due writes nothing, and a touch is one.
func TestManager_roundTrips(t *testing.T) {
	raw, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisAddr(t)}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	prefix := uniquePrefix()
	t.Cleanup(func() { dropPrefix(t, raw, prefix) })
	cc := &countingClient{Client: raw, cmds: make(map[string]int)}
	st, err := redisstore.NewFromClient(cc, redisstore.Config{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	serve := cartApp(t, st, &now)
	serve("/login")
	serve("/add") // the first save of a bound record may raise its index entry
	// Load the touch script too: a server meets each script once with EVAL.
	st.Touch(t.Context(), "warm-up", 0, time.Now().Add(time.Minute))
	cc.take()

	for _, tc := range []struct {
		path    string
		advance time.Duration
		want    string // command counts, sorted
	}{
		{"/none", 0, ""},
		{"/read", 0, "get:1"},
		{"/add", 0, "evalsha:1 get:1"},
		{"/read", 30 * time.Second, "get:1"},          // no touch due: nothing written
		{"/read", 2 * time.Minute, "evalsha:1 get:1"}, // the touch
		{"/add", 0, "evalsha:1 get:1"},
	} {
		now = now.Add(tc.advance)
		serve(tc.path)
		calls, cmds := cc.take()
		var got []string
		total := 0
		for name, n := range cmds {
			got = append(got, name+":"+strconv.Itoa(n))
			total += n
		}
		slices.Sort(got)
		if strings.Join(got, " ") != tc.want || calls != total {
			t.Errorf("%s (+%v): %d round trips, commands %v; want %q, one round trip each", tc.path, tc.advance,
				calls, got, tc.want)
		}
	}
}

// TestManager_roundTrips_nearCache counts, with MONITOR on a server of its
// own, what whole requests through the session Manager send with a near
// cache: a read of a warm session sends nothing, a change one EVALSHA (no
// GET before it), a touch one EVALSHA.
func TestManager_roundTrips_nearCache(t *testing.T) {
	t.Parallel()
	srv := startStandalone(t)
	admin := adminClient(t, srv.addr())
	const prefix = "mnc:"
	st := newStore(t, redisstore.Config{Addrs: []string{srv.addr()}, KeyPrefix: prefix,
		NearCache: &redisstore.NearCache{ProbeInterval: -1}})
	mon := startMonitor(t, srv.addr())
	now := time.Now()
	serve := cartApp(t, st, &now)
	serve("/login")
	serve("/add")
	serve("/add") // both scripts loaded, the index raised, the session cached
	st.Touch(t.Context(), "warm-up", 0, time.Now().Add(time.Minute))
	mon.take(t, admin, prefix)

	for _, tc := range []struct {
		path    string
		advance time.Duration
		want    string // commands sent, sorted
		body    string
	}{
		{"/read", 0, "", `["x","x"]`},
		{"/read", 0, "", `["x","x"]`},
		{"/add", 0, "EVALSHA", ""},
		{"/read", 0, "", `["x","x","x"]`},
		{"/read", 2 * time.Minute, "EVALSHA", `["x","x","x"]`}, // the touch
		{"/read", 0, "", `["x","x","x"]`},
		{"/add", 0, "EVALSHA", ""},
	} {
		now = now.Add(tc.advance)
		body := serve(tc.path)
		got := mon.take(t, admin, prefix)
		slices.Sort(got)
		if strings.Join(got, " ") != tc.want || body != tc.body {
			t.Errorf("%s (+%v): sent %v, answered %s; want %q, %s", tc.path, tc.advance, got, body, tc.want, tc.body)
		}
	}
}

// cartApp returns a function that serves one request to a session Manager
// on st (clock *now, TouchInterval 1 min) with the cart handlers /login,
// /add and /read, keeping the session cookie between calls, and returns
// the answer's body without its final newline.
func cartApp(t *testing.T, st store.Store, now *time.Time) func(path string) string {
	m, err := session.New(session.Config{Store: st, Now: func() time.Time { return *now }, TouchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch r.URL.Path {
		case "/login":
			s.Login("alice")
		case "/add":
			session.Update(s, "cart", func(items []string) []string { return append(items, "x") })
		case "/read":
			cart, _ := session.Value[[]string](s, "cart")
			json.NewEncoder(w).Encode(cart)
		}
	}))
	cookie := ""
	return func(path string) string {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: status %d %s", path, w.Code, w.Body)
		}
		for _, c := range w.Result().Cookies() {
			cookie = c.Name + "=" + c.Value
		}
		return strings.TrimSpace(w.Body.String())
	}
}
