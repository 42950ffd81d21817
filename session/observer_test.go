package session_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
)

// recorder is an Observer that remembers what it saw.
type recorder struct {
	mu     sync.Mutex
	events []session.Event
	calls  []session.StoreCall
}

func (r *recorder) SessionEvent(_ context.Context, e session.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) StoreCall(_ context.Context, c session.StoreCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// take returns the event kinds and store ops seen since the last take.
func (r *recorder) take() (kinds, ops string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k, o []string
	for _, e := range r.events {
		k = append(k, e.Kind.String())
	}
	for _, c := range r.calls {
		o = append(o, c.Op)
	}
	r.events, r.calls = nil, nil
	return strings.Join(k, " "), strings.Join(o, " ")
}

func TestObserver(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, testHandler(t), func(c *session.Config) { c.Observer = rec; c.IdleTimeout = time.Hour })
	tok := token(t, e.do("GET", "/login?user=alice", ""))
	steps := []struct {
		name, path   string
		advance      time.Duration
		kinds, ops   string
		sendsToken   bool
		useNewCookie bool
	}{
		{"read", "/whoami", 0, "", "load", false, false},
		{"write", "/set?k=a&v=1", 0, "", "load save", false, false},
		{"renew", "/renew", 0, "renewed", "load save save", true, true},
		{"destroy", "/destroy", 0, "destroyed", "load delete", false, false},
	}
	kinds, ops := rec.take()
	if kinds != "created" || ops != "save" {
		t.Fatalf("login: events %q, store calls %q; want created, save", kinds, ops)
	}
	for _, st := range steps {
		e.clock.Advance(st.advance)
		resp := e.do("GET", st.path, tok)
		kinds, ops := rec.take()
		if kinds != st.kinds || ops != st.ops {
			t.Errorf("%s: events %q, store calls %q; want %q, %q", st.name, kinds, ops, st.kinds, st.ops)
		}
		if st.useNewCookie {
			tok = token(t, resp)
		}
	}

	// Expired: reported when the store hands back a session the Manager
	// finds expired (here a store that keeps records a day longer).
	lax := *e
	lm, _ := session.New(session.Config{Store: laxStore{e.mem}, Now: e.clock.Now, Observer: rec, IdleTimeout: time.Hour})
	lax.h = lm.Handler(testHandler(t))
	tok = token(t, lax.do("GET", "/login?user=bob", ""))
	e.clock.Advance(2 * time.Hour)
	if got := body(t, lax.do("GET", "/whoami", tok)); got != "" {
		t.Fatalf("expired session still logged in as %q", got)
	}
	if kinds, _ := rec.take(); kinds != "created expired" {
		t.Errorf("expired: events %q; want created expired", kinds)
	}
	for range 3 {
		e.do("GET", "/login?user=carol", "")
	}
	rec.take()
	if n, err := e.m.DestroyUser(context.Background(), "carol"); n != 3 || err != nil {
		t.Fatalf("DestroyUser = %d, %v", n, err)
	}
	rec.mu.Lock()
	got := rec.events
	rec.mu.Unlock()
	if len(got) != 1 || got[0].Kind != session.EventUserRevoked || got[0].Count != 3 {
		t.Errorf("DestroyUser events %+v; want one user_revoked with Count 3", got)
	}

	// Store calls carry durations and classify outages.
	rec.take()
	m, _ := session.New(session.Config{Store: failingStore{}, Observer: rec})
	id, _ := sid.New("")
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "__Host-session="+id.String())
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { session.From(r).UserID() })).
		ServeHTTP(httptest.NewRecorder(), r)
	rec.mu.Lock()
	calls := rec.calls
	rec.mu.Unlock()
	if len(calls) != 1 || !calls[0].Outage || calls[0].Op != store.OpNameLoad || calls[0].Err == nil {
		t.Errorf("store calls %+v; want one failed load, an outage", calls)
	}
}

func TestObserver_conflicts(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, testHandler(t), nil)
	tok := token(t, e.do("GET", "/set?k=init&v=1", ""))
	m, err := session.New(session.Config{Store: newBarrierStore(e.mem, 2), Now: e.clock.Now, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	racing := *e
	racing.h = m.Handler(testHandler(t))
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { racing.do("GET", fmt.Sprintf("/set?k=k%d&v=1", i), tok) })
	}
	wg.Wait()
	if kinds, _ := rec.take(); kinds != "conflict_retried" {
		t.Fatalf("events %q; want one conflict_retried", kinds)
	}
}

// TestLogs_neverContainIDs drives the paths that log (bad tokens, store
// failures, conflicts, sessions destroyed meanwhile, late changes) with a
// debug logger, and checks that no session ID, token or store key reaches
// the output.
func TestLogs_neverContainIDs(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&buf, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var secrets []string
	note := func(tok string) {
		if id, err := sid.Parse(tok); err == nil {
			secrets = append(secrets, id.String()[:sid.RandomLen], id.Key())
		}
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch r.URL.Path {
		case "/late":
			w.Write([]byte("x"))
			s.Login("eve") // refused: logged
		case "/logme":
			slog.New(logger.Handler()).Info("handler", "session", s)
		default:
			testHandler(t)(w, r)
		}
	}
	e := newEnv(t, h, func(c *session.Config) { c.Logger = logger })
	tok := token(t, e.do("GET", "/login?user=alice", ""))
	note(tok)
	e.do("GET", "/logme", tok)
	e.do("GET", "/late", tok)
	tampered := []byte(tok)
	tampered[3] ^= 1
	e.do("GET", "/whoami", string(tampered))
	e.do("GET", "/whoami", tok[:40]+"!!.x y")
	e.do("GET", "/whoami", tok+".bad route")
	renewed := token(t, e.do("GET", "/renew", tok))
	note(renewed)
	e.do("GET", "/set?k=a&v=1", tok) // the old ID: a tombstone now
	e.do("GET", "/destroy", renewed)

	m, _ := session.New(session.Config{Store: failingStore{}, Logger: logger})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "__Host-session="+renewed)
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { session.From(r).Set("a", 1) })).
		ServeHTTP(httptest.NewRecorder(), r)

	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, `"level":"DEBUG"`) || !strings.Contains(out, `"level":"ERROR"`) {
		t.Fatalf("the test logged too little to mean anything:\n%s", out)
	}
	for _, secret := range secrets {
		for _, part := range []string{secret, secret[:16]} {
			if strings.Contains(out, part) {
				t.Fatalf("log output contains %q, part of a session ID or key:\n%s", part, out)
			}
		}
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// laxStore keeps records a day past their expiry, like a store that
// expires coarsely, and reports their real expiry.
type laxStore struct{ store.Store }

func (l laxStore) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	rec.Expires = rec.Expires.Add(24 * time.Hour)
	return l.Store.Save(ctx, key, rec)
}

func (l laxStore) Load(ctx context.Context, key string) (store.Record, error) {
	rec, err := l.Store.Load(ctx, key)
	rec.Expires = rec.Expires.Add(-24 * time.Hour)
	return rec, err
}

func TestObservers(t *testing.T) {
	a, b := &recorder{}, &recorder{}
	e := newEnv(t, testHandler(t), func(c *session.Config) { c.Observer = session.Observers(a, nil, b) })
	e.do("GET", "/login?user=alice", "")
	for name, r := range map[string]*recorder{"first": a, "second": b} {
		if kinds, ops := r.take(); kinds != "created" || ops != "save" {
			t.Errorf("%s observer saw %q, %q; want created, save", name, kinds, ops)
		}
	}
}
