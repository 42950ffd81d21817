package memcachedstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memcachedstore"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// uniquePrefix returns a key prefix no other store of this run uses.
func uniquePrefix() string { return "sktest:" + rand.Text()[:12] + ":" }

// newStore makes a store with cfg and closes it when t ends.
func newStore(t testing.TB, cfg memcachedstore.Config) *memcachedstore.Store {
	t.Helper()
	s, err := memcachedstore.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runSuite runs the conformance suite on stores on servers, each with a
// unique key prefix. With serverClock the stores use the real clock, and
// the suite's expiry tests wait for real time; otherwise the suite's fake
// clock.
func runSuite(t *testing.T, servers []string, serverClock bool) {
	probe := newStore(t, memcachedstore.Config{Servers: servers})
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			cfg := memcachedstore.Config{Servers: servers, KeyPrefix: uniquePrefix()}
			if !serverClock {
				cfg.Now = now
			}
			s, err := memcachedstore.New(t.Context(), cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return s // Run closes it
		},
		ServerClock: serverClock,
		MaxData:     probe.MaxData(),
	})
}

// TestConformance runs the store contract's suite against the shared
// Memcached, on the suite's fake clock (expiry as Load sees it) and on the
// real one.
func TestConformance(t *testing.T) {
	t.Parallel()
	addr := memcachedAddr(t)
	t.Run("FakeClock", func(t *testing.T) { runSuite(t, []string{addr}, false) })
	t.Run("RealClock", func(t *testing.T) { runSuite(t, []string{addr}, true) })
}

// TestThreeServers runs the suite against three memcached processes the
// test starts, after checking that records and indexes spread over all
// three.
func TestThreeServers(t *testing.T) {
	t.Parallel()
	var addrs []string
	for range 3 {
		addrs = append(addrs, startMemcached(t).addr)
	}
	t.Run("Spread", func(t *testing.T) {
		s := newStore(t, memcachedstore.Config{Servers: addrs, KeyPrefix: "spread:"})
		ctx := t.Context()
		exp := time.Now().Add(time.Hour)
		users := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
		for i := range 60 {
			rec := store.Record{Data: []byte("x"), Expires: exp, UserID: users[i%len(users)]}
			if _, err := s.Save(ctx, fmt.Sprintf("key-%d", i), rec); err != nil {
				t.Fatalf("Save(key-%d): %v", i, err)
			}
		}
		for _, u := range users {
			if list, err := s.ListUser(ctx, u); err != nil || len(list) != 10 {
				t.Errorf("ListUser(%q): got %d entries, err %v; want 10, nil", u, len(list), err)
			}
		}
		for _, a := range addrs {
			n := itemCount(t, a)
			t.Logf("%s holds %d items", a, n)
			if n == 0 {
				t.Errorf("server %s holds no item; want keys on every server", a)
			}
		}
		for _, u := range users {
			if n, err := s.DeleteUser(ctx, u); err != nil || n != 10 {
				t.Errorf("DeleteUser(%q): got %d, err %v; want 10, nil", u, n, err)
			}
		}
	})
	t.Run("Suite", func(t *testing.T) { runSuite(t, addrs, false) })
	t.Run("SuiteRealClock", func(t *testing.T) { runSuite(t, addrs, true) })
}

// itemCount returns the server's curr_items.
func itemCount(t *testing.T, addr string) int {
	t.Helper()
	stats := serverStats(t, addr, "")
	var n int
	fmt.Sscan(stats["curr_items"], &n)
	return n
}

// TestServerExpiresItems checks that Memcached itself drops an expired
// record's item, by its own clock, within two seconds of the expiry (the
// store hides it from the expiry on, by its clock).
func TestServerExpiresItems(t *testing.T) {
	t.Parallel()
	addr := memcachedAddr(t)
	prefix := uniquePrefix()
	s := newStore(t, memcachedstore.Config{Servers: []string{addr}, KeyPrefix: prefix})
	exp := time.Now().Add(time.Second)
	if _, err := s.Save(t.Context(), "k", store.Record{Data: []byte("x"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	raw := memcache.New(addr)
	if _, err := raw.Get(prefix + "s:k"); err != nil {
		t.Fatalf("raw get of the item before expiry: %v", err)
	}
	deadline := exp.Add(3 * time.Second)
	for {
		_, err := raw.Get(prefix + "s:k")
		if errors.Is(err, memcache.ErrCacheMiss) {
			t.Logf("Memcached dropped the item %v after its record's expiry", time.Since(exp).Round(time.Millisecond))
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("item still in Memcached %v after its record expired; want gone within 2 s", time.Since(exp))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNew_badConfig checks that New refuses what it cannot use, without
// dialing.
func TestNew_badConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  memcachedstore.Config
	}{
		{"NoPort", memcachedstore.Config{Servers: []string{"127.0.0.1"}}},
		{"Twice", memcachedstore.Config{Servers: []string{"127.0.0.1:1", "127.0.0.1:1"}}},
		{"SpaceInPrefix", memcachedstore.Config{KeyPrefix: "a b"}},
		{"LongPrefix", memcachedstore.Config{KeyPrefix: string(make([]byte, 49))}},
		{"NegativeTimeout", memcachedstore.Config{Timeout: -1}},
		{"NegativeIdle", memcachedstore.Config{MaxIdleConns: -1}},
		{"SmallItems", memcachedstore.Config{MaxItemSize: 100}},
		{"NegativeBreaker", memcachedstore.Config{MaxItemSize: 1 << 20, Breaker: breaker.Config{Failures: -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := memcachedstore.New(context.Background(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New(%+v): got nil error; want one", tc.cfg)
			}
			t.Log(err)
		})
	}
}

// TestNew_noServer checks that New fails, promptly, when a server does
// not answer.
func TestNew_noServer(t *testing.T) {
	srv := startMemcached(t)
	srv.kill()
	start := time.Now()
	s, err := memcachedstore.New(t.Context(), memcachedstore.Config{Servers: []string{srv.addr}, Timeout: 200 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("New with no server: got nil error; want one")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("New with no server took %v; want under 1s", d)
	}
	t.Log(err)
}
