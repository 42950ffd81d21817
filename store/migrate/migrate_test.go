package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/migrate"
	"github.com/sessionkit/sessionkit/store/storetest"
)

func newMem(t *testing.T, now func() time.Time) *memstore.Store {
	t.Helper()
	m, err := memstore.New(memstore.Config{Now: now, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// The migrating store keeps the store contract, with an empty old store
// (every key a miss there) and with an old store whose records the suite
// never wrote.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			s, _ := migrate.New(newMem(t, now), newMem(t, now))
			return s
		},
	})
}

// app is a node's reference handler: login, add an item, read the cart,
// logout.
func app(t *testing.T, st store.Store) http.Handler {
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch r.URL.Path {
		case "/login":
			s.Login(r.URL.Query().Get("user"))
		case "/add":
			item := r.URL.Query().Get("item")
			session.Update(s, "cart", func(c []string) []string { return append(c, item) })
		case "/cart":
			c, _ := session.Value[[]string](s, "cart")
			fmt.Fprint(w, len(c))
		case "/logout":
			s.Destroy()
		}
	}))
}

func do(h http.Handler, path, tok string) (string, string) {
	r := httptest.NewRequest("POST", path, nil)
	if tok != "" {
		r.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		tok = c.Value
	}
	return w.Body.String(), tok
}

// TestMigrate_twoNodes: sessions made on the old store are served by two
// migrating nodes under concurrent changes: none lost, no update lost, a
// destroyed session never comes back, and each session is copied once.
func TestMigrate_twoNodes(t *testing.T) {
	old, nu := newMem(t, nil), newMem(t, nil)
	before := app(t, old) // an instance of the previous deployment
	const users, adds = 20, 16
	tokens := make([]string, users)
	for i := range tokens {
		_, tokens[i] = do(before, "/login?user="+fmt.Sprint("u", i), "")
		_, tokens[i] = do(before, "/add?item=old", tokens[i])
	}
	// Two migrating nodes, each with its own wrapper over the shared old
	// and new stores (never closed: the test closes the stores).
	var nodes [2]http.Handler
	var stats [2]*migrate.Store
	for i := range nodes {
		var st store.Store
		st, stats[i] = migrate.New(old, nu)
		nodes[i] = app(t, st)
	}
	var wg sync.WaitGroup
	for u := range users {
		for a := range adds {
			wg.Go(func() { do(nodes[a%2], "/add?item=x", tokens[u]) })
		}
	}
	wg.Wait()
	for u, tok := range tokens {
		if got, _ := do(nodes[u%2], "/cart", tok); got != fmt.Sprint(1+adds) {
			t.Errorf("user %d: %s items; want %d (1 from the old deployment, %d concurrent adds)", u, got, 1+adds, adds)
		}
	}
	if c := stats[0].Stats().Copied + stats[1].Stats().Copied; c != users {
		t.Errorf("%d copies; want %d, one per session", c, users)
	}
	// Logout on one node: gone on both, and from the old store too.
	do(nodes[0], "/logout", tokens[0])
	for i, n := range nodes {
		if got, _ := do(n, "/cart", tokens[0]); got != "0" {
			t.Errorf("node %d after logout: %s items; want none", i, got)
		}
	}
	if got, _ := do(before, "/cart", tokens[0]); got != "0" {
		t.Errorf("the old deployment after logout: %s items; want none (the old record deleted too)", got)
	}
}

// TestMigrate_deleteDuringCopy: a session deleted while a Load was copying
// it is not brought back by the copy.
func TestMigrate_deleteDuringCopy(t *testing.T) {
	old, nu := newMem(t, nil), newMem(t, nil)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if _, err := old.Save(ctx, "k", store.Record{Data: []byte("x"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	var mig store.Store
	// The new store's first Save (the copy) runs a whole Delete of the
	// session through the migrating store first, as another instance would.
	hook := &onSave{Store: nu, before: func() {
		if err := mig.Delete(ctx, "k", 0); err != nil {
			t.Errorf("Delete: %v", err)
		}
	}}
	mig, _ = migrate.New(old, hook)
	if _, err := mig.Load(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load racing a Delete: %v; want ErrNotFound", err)
	}
	for name, st := range map[string]store.Store{"new": nu, "old": old, "migrating": mig} {
		if _, err := st.Load(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s store after the Delete: %v; want ErrNotFound", name, err)
		}
	}
}

func TestMigrate_userIndex(t *testing.T) {
	old, nu := newMem(t, nil), newMem(t, nil)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, k := range []string{"a", "b"} {
		old.Save(ctx, k, store.Record{Data: []byte(k), Expires: exp, UserID: "alice"})
	}
	nu.Save(ctx, "c", store.Record{Data: []byte("c"), Expires: exp, UserID: "alice"})
	mig, _ := migrate.New(old, nu)
	mig.Load(ctx, "a") // copied: in both stores now
	idx := mig.(store.UserIndex)
	if entries, err := idx.ListUser(ctx, "alice"); err != nil || len(entries) != 3 {
		t.Errorf("ListUser: %d entries, %v; want a, b, c once each", len(entries), err)
	}
	if n, err := idx.DeleteUser(ctx, "alice"); err != nil || n != 3 {
		t.Errorf("DeleteUser: %d, %v; want 3", n, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := mig.Load(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Load(%q) after DeleteUser: %v; want ErrNotFound", k, err)
		}
	}
}

// TestMigrate_oldStoreDown: a miss in the new store with the old one down
// is an outage, never "no session" (which would log the user out).
func TestMigrate_oldStoreDown(t *testing.T) {
	old := newMem(t, nil)
	old.Close()
	mig, _ := migrate.New(old, newMem(t, nil))
	_, err := mig.Load(context.Background(), "k")
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load with the old store down: %v; want an error that is not ErrNotFound", err)
	}
}

// onSave runs before once, before the first Save.
type onSave struct {
	store.Store
	before func()
	once   sync.Once
}

func (o *onSave) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	o.once.Do(o.before)
	return o.Store.Save(ctx, key, rec)
}

// TestMigrate_remaining: Remaining counts the sessions that live only in
// the old store, as they move and end.
func TestMigrate_remaining(t *testing.T) {
	old, nu := newMem(t, nil), newMem(t, nil)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for i := range 5 {
		old.Save(ctx, fmt.Sprint("k", i), store.Record{Data: []byte("x"), Expires: exp})
	}
	old.Save(ctx, "gone", store.Record{Data: []byte("x"), Expires: time.Now().Add(-time.Second)})
	nu.Save(ctx, "new", store.Record{Data: []byte("x"), Expires: exp})
	st, mig := migrate.New(old, nu)
	remaining := func(want int) {
		t.Helper()
		if n, err := mig.Remaining(ctx); err != nil || n != want {
			t.Errorf("Remaining: %d, %v; want %d", n, err, want)
		}
	}
	remaining(5)
	st.Load(ctx, "k0")
	st.Load(ctx, "k1")
	remaining(3)
	st.Delete(ctx, "k2", 0)
	remaining(2)

	// Through a wrapper that hides ScanKeys: unsupported, unless Scanner is set.
	_, hidden := migrate.New(struct{ store.Store }{old}, nu)
	if _, err := hidden.Remaining(ctx); !errors.Is(err, store.ErrUnsupported) {
		t.Errorf("Remaining of an old store that cannot list its keys: %v; want ErrUnsupported", err)
	}
	hidden.Scanner = old
	if n, err := hidden.Remaining(ctx); err != nil || n != 2 {
		t.Errorf("Remaining with Scanner: %d, %v; want 2", n, err)
	}
}
