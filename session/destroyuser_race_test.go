package session_test

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// DestroyUser racing with a Renew of one of the user's sessions: the
// session survives "log out everywhere" under its new ID.
func TestManager_destroyUserRacingRenew(t *testing.T) {
	for trial := range 200 {
		clk := newClock()
		mem, err := memstore.New(memstore.Config{Now: clk.Now, CleanupInterval: -1, Shards: 2})
		if err != nil {
			t.Fatal(err)
		}
		var armed atomic.Bool
		paused, resume := make(chan struct{}), make(chan struct{})
		mem.Subscribe(func(ev store.Event) {
			if ev.Op == store.OpDelete && armed.CompareAndSwap(true, false) {
				close(paused)
				<-resume
			}
		})
		m, _ := session.New(session.Config{Store: mem, Now: clk.Now})
		e := &env{t: t, clock: clk, mem: mem, m: m, h: m.Handler(testHandler(t))}
		old := token(t, e.do("GET", "/login?user=alice", ""))
		token(t, e.do("GET", "/login?user=alice", "")) // another device
		oldID, _ := sid.Parse(old)
		armed.Store(true)
		done := make(chan struct{})
		go func() { m.DestroyUser(context.Background(), "alice"); close(done) }()
		<-paused // DestroyUser has swept one shard
		if _, err := mem.Load(context.Background(), oldID.Key()); err != nil {
			close(resume)
			<-done
			mem.Close()
			continue // old was in the first shard; try again
		}
		r := httptest.NewRequest("GET", "/renew", nil)
		r.Header.Set("Cookie", "__Host-session="+old)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		renewed := token(t, w.Result())
		close(resume)
		<-done
		if got := body(t, e.do("GET", "/whoami", renewed)); got == "alice" {
			t.Fatalf("trial %d: after DestroyUser returned, the renewed session is still logged in as alice", trial)
		}
		mem.Close()
	}
}
