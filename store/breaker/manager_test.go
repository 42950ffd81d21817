package breaker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
)

// downStore fails every call and counts them.
type downStore struct{ calls atomic.Int64 }

func (d *downStore) Load(context.Context, string) (store.Record, error) {
	d.calls.Add(1)
	return store.Record{}, errDown
}
func (d *downStore) Save(context.Context, string, store.Record) (uint64, error) {
	d.calls.Add(1)
	return 0, errDown
}
func (d *downStore) Delete(context.Context, string, uint64) error { d.calls.Add(1); return errDown }
func (d *downStore) Close() error                                 { return nil }

// TestManager_failsFast: behind a breaker, a Manager whose store is down
// stops calling it after Failures requests and answers 503 with the
// breaker's Retry-After.
func TestManager_failsFast(t *testing.T) {
	c := newClock()
	down := &downStore{}
	b, _ := breaker.New(breaker.Config{Failures: 3, OpenFor: 10 * time.Second, Now: c.Now})
	m, err := session.New(session.Config{Store: breaker.Wrap(down, b), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).UserID()
	}))
	tok, _ := sid.New("")
	serve := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", "session="+tok.String())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for range 3 {
		serve()
	}
	before := down.calls.Load()
	for range 100 {
		w := serve()
		if w.Code != 503 || w.Header().Get("Retry-After") != "10" {
			t.Fatalf("got %d, Retry-After %q; want 503 and 10", w.Code, w.Header().Get("Retry-After"))
		}
	}
	if n := down.calls.Load() - before; n != 0 {
		t.Fatalf("%d store calls while the circuit was open; want 0", n)
	}
	c.Advance(10 * time.Second)
	serve()
	if n := down.calls.Load() - before; n != 1 {
		t.Fatalf("%d store calls after the open period; want 1 probe", n)
	}
}
