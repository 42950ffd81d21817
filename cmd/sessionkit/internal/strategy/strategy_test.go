package strategy_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/token"
)

// TestRegistry checks that the entries hang together: unique names found
// by Lookup, each flag declared once, and every flag read by some
// strategy.
func TestRegistry(t *testing.T) {
	names := strategy.Names()
	if want := []string{"memory", "token", "redis", "postgres", "memcached", "olric", "nats"}; !slices.Equal(names, want) {
		t.Errorf("Names() = %v; want %v", names, want)
	}
	for i, st := range strategy.All() {
		if st.Name != names[i] || st.What == "" {
			t.Errorf("entry %d: name %q (Names says %q), what %q", i, st.Name, names[i], st.What)
		}
		if got, ok := strategy.Lookup(st.Name); !ok || got.Name != st.Name {
			t.Errorf("Lookup(%q) = %q, %v", st.Name, got.Name, ok)
		}
	}
	if _, ok := strategy.Lookup("couchbase"); ok {
		t.Error(`Lookup("couchbase") found an entry`)
	}

	defaults := strategy.Defaults()
	embedded := defaults
	embedded.ClusterAddr = "127.0.0.1:7000"
	redisRevocations := defaults
	redisRevocations.Revocations = "redis"
	seen := map[string]bool{}
	for _, f := range strategy.Flags() {
		if seen[f.Name] {
			t.Errorf("Flags() lists --%s twice", f.Name)
		}
		seen[f.Name] = true
		if f.When == "" {
			t.Errorf("--%s: no When", f.Name)
		}
		used := false
		for _, st := range strategy.All() {
			for _, s := range []*strategy.Settings{&defaults, &embedded, &redisRevocations} {
				used = used || st.Uses(f.Name, s)
			}
		}
		if !used {
			t.Errorf("--%s is declared but no strategy reads it", f.Name)
		}
	}
	for _, st := range strategy.All() {
		for _, f := range st.Flags {
			if !seen[f.Name] {
				t.Errorf("%s reads --%s, which Flags() does not declare", st.Name, f.Name)
			}
		}
	}
}

// TestDefaults checks the defaults the Settings documentation states.
func TestDefaults(t *testing.T) {
	got := strategy.Defaults()
	want := strategy.Settings{
		MaxSessions:       memstore.DefaultMaxEntries,
		KeysReload:        5 * time.Second,
		TokenFormat:       "sealed",
		Revocations:       "memory",
		RevocationRefresh: 2 * time.Second,
		RedisURL:          "redis://127.0.0.1:6379/0",
		PostgresURL:       "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		MemcachedAddrs:    "127.0.0.1:11211",
		OlricAddrs:        "127.0.0.1:3320",
		NATSURL:           "nats://127.0.0.1:4222",
		RemoveDeadAfter:   10 * time.Second,
	}
	if got != want {
		t.Errorf("Defaults() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestUsesAndDescribe(t *testing.T) {
	s := strategy.Defaults()
	nats, _ := strategy.Lookup("nats")
	tok, _ := strategy.Lookup("token")
	for _, tc := range []struct {
		st        strategy.Strategy
		set       func(*strategy.Settings)
		uses, not []string
		describe  string
	}{
		{nats, func(*strategy.Settings) {}, []string{"nats", "cluster-addr"}, []string{"peers", "data-dir", "olric", "redis"},
			"--strategy nats"},
		{nats, func(s *strategy.Settings) { s.ClusterAddr = "127.0.0.1:7000" }, []string{"cluster-addr", "peers", "data-dir"},
			[]string{"nats", "olric-addr"}, "--strategy nats with --cluster-addr"},
		{tok, func(*strategy.Settings) {}, []string{"keys", "token-format"}, []string{"redis", "max-sessions"},
			"--strategy token with --revocations memory"},
		{tok, func(s *strategy.Settings) { s.Revocations = "redis" }, []string{"redis", "revocations"}, nil,
			"--strategy token with --revocations redis"},
	} {
		s := s
		tc.set(&s)
		for _, f := range tc.uses {
			if !tc.st.Uses(f, &s) {
				t.Errorf("%s: does not use --%s", tc.describe, f)
			}
		}
		for _, f := range tc.not {
			if tc.st.Uses(f, &s) {
				t.Errorf("%s: uses --%s", tc.describe, f)
			}
		}
		if got := tc.st.Describe(&s); got != tc.describe {
			t.Errorf("Describe = %q; want %q", got, tc.describe)
		}
	}
}

// TestCheck checks that bad settings are refused by Check, as a
// *FlagError when a flag's value is wrong, and by Open before anything
// starts.
func TestCheck(t *testing.T) {
	tok, _ := strategy.Lookup("token")
	mem, _ := strategy.Lookup("memory")
	mc, _ := strategy.Lookup("memcached")
	withKeys := strategy.Defaults()
	withKeys.Keys = "k.json"
	for _, tc := range []struct {
		st   strategy.Strategy
		set  func(*strategy.Settings)
		flag string // "" for an error that is not a FlagError
		want string
	}{
		{tok, func(s *strategy.Settings) { s.Keys = "" }, "", "--strategy token needs --keys FILE"},
		{tok, func(s *strategy.Settings) { s.TokenFormat = "paseto" }, "token-format", `invalid --token-format "paseto": want sealed or jwt`},
		{tok, func(s *strategy.Settings) { s.Revocations = "disk" }, "revocations", "want memory or redis"},
		{tok, func(s *strategy.Settings) { s.RevocationRefresh = 0 }, "revocation-refresh", "must be positive"},
		{tok, func(s *strategy.Settings) { s.KeysReload = -time.Second }, "keys-reload", "must be 0 (only on SIGHUP) or positive"},
		{mem, func(s *strategy.Settings) { s.MaxSessions = -1 }, "max-sessions", "must be 0 (no bound) or positive"},
		{mc, func(s *strategy.Settings) { s.MemcachedAddrs = " , " }, "memcached", `invalid --memcached " , ": want host:port,...`},
		{mc, func(s *strategy.Settings) { s.MemcachedAddrs = "127.0.0.1:11211,cache" }, "memcached", `"cache" is not host:port`},
	} {
		s := withKeys
		tc.set(&s)
		err := tc.st.Check(&s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Check = %v; want an error with %q", tc.st.Name, err, tc.want)
			continue
		}
		fe, isFlag := errors.AsType[*strategy.FlagError](err)
		if tc.flag == "" && isFlag || tc.flag != "" && (!isFlag || fe.Flag != tc.flag) {
			t.Errorf("%s: Check = %#v; want a FlagError for %q", tc.st.Name, err, tc.flag)
		}
		if _, err := tc.st.Open(t.Context(), strategy.Node{Name: "t1", Settings: s}); err == nil ||
			!strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open = %v; want the Check error", tc.st.Name, err)
		}
	}
	if err := tok.Check(&withKeys); err != nil {
		t.Errorf("token with --keys: Check = %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// record returns a session record that expires after d.
func record(d time.Duration) store.Record {
	return store.Record{Data: []byte("cart"), Expires: time.Now().Add(d)}
}

// TestOpenMemory opens a memory node: a working store bounded by
// MaxSessions, its memstore exposed, and nothing left after Kill.
func TestOpenMemory(t *testing.T) {
	mem, _ := strategy.Lookup("memory")
	s := strategy.Defaults()
	s.MaxSessions = 1
	sess, err := mem.Open(t.Context(), strategy.Node{Name: "t1", Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	if sess.Store == nil || sess.Tokens != nil || sess.Memstore == nil {
		t.Fatalf("Sessions = %+v; want a store and its memstore", sess)
	}
	ctx := t.Context()
	if _, err := sess.Store.Save(ctx, "a", record(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if rec, err := sess.Store.Load(ctx, "a"); err != nil || string(rec.Data) != "cart" {
		t.Fatalf("Load = %q, %v; want the saved record", rec.Data, err)
	}
	// MaxSessions 1: a second session evicts the first.
	if _, err := sess.Store.Save(ctx, "b", record(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Store.Load(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load of the evicted session: %v; want ErrNotFound (MaxSessions 1)", err)
	}
	sess.Kill()
	if _, err := sess.Store.Load(ctx, "b"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Load after Kill: %v; want ErrClosed", err)
	}
	sess.Close() // after Kill: nothing, and no panic
	if h := http.NotFoundHandler(); sess.Handler(h) == nil {
		t.Error("Handler(next) is nil")
	}
}

// counting returns a Node.Wrap that counts the calls to the store in
// calls and, while failing is set, fails them.
func counting(calls *atomic.Int32, failing *atomic.Bool) func(store.Store) store.Store {
	return func(st store.Store) store.Store {
		return store.Intercept(st, func(ctx context.Context, _ string, call func(context.Context) error) error {
			calls.Add(1)
			if failing != nil && failing.Load() {
				return errors.New("injected outage")
			}
			return call(ctx)
		})
	}
}

// redisURL returns the test Redis's URL with a key prefix of its own.
func redisURL(t *testing.T) string {
	addr := testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379")
	return "redis://" + addr + "/0?key_prefix=sktest" + rand.Text()[:8] + ":"
}

// TestOpenRedis opens a redis node on the test Redis: its store calls go
// through Node.Wrap, inside a circuit breaker configured by Node.Breaker.
func TestOpenRedis(t *testing.T) {
	rs, _ := strategy.Lookup("redis")
	s := strategy.Defaults()
	s.RedisURL = redisURL(t)
	var failing atomic.Bool
	var opened atomic.Int32
	var calls atomic.Int32
	sess, err := rs.Open(t.Context(), strategy.Node{
		Name: "t1", Settings: s,
		Breaker: breaker.Config{Failures: 2, OpenFor: time.Hour, OnStateChange: func(_, to breaker.State) {
			if to == breaker.Open {
				opened.Add(1)
			}
		}},
		Wrap: counting(&calls, &failing),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctx := t.Context()
	if _, err := sess.Store.Save(ctx, "a", record(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if rec, err := sess.Store.Load(ctx, "a"); err != nil || string(rec.Data) != "cart" {
		t.Fatalf("Load = %q, %v; want the saved record", rec.Data, err)
	}
	failing.Store(true)
	for range 2 {
		sess.Store.Load(ctx, "a")
	}
	before := calls.Load()
	if _, err := sess.Store.Load(ctx, "a"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Load after 2 failures: %v; want ErrUnavailable from the open breaker", err)
	}
	if opened.Load() != 1 || calls.Load() != before {
		t.Errorf("breaker opened %d times, %d calls reached Wrap while open; want 1 and 0",
			opened.Load(), calls.Load()-before)
	}
}

// TestOpenMemcached opens a memcached node on the test Memcached: its
// store calls go through Node.Wrap, inside a circuit breaker configured by
// Node.Breaker, and two nodes on the same servers share sessions.
func TestOpenMemcached(t *testing.T) {
	ms, _ := strategy.Lookup("memcached")
	s := strategy.Defaults()
	s.MemcachedAddrs = testenv.TCPAddr(t, "SESSIONKIT_MEMCACHED_ADDR", "127.0.0.1:11211")
	var failing atomic.Bool
	var opened, calls atomic.Int32
	sess, err := ms.Open(t.Context(), strategy.Node{
		Name: "t1", Settings: s,
		Breaker: breaker.Config{Failures: 2, OpenFor: time.Hour, OnStateChange: func(_, to breaker.State) {
			if to == breaker.Open {
				opened.Add(1)
			}
		}},
		Wrap: counting(&calls, &failing),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	other, err := ms.Open(t.Context(), strategy.Node{Name: "t2", Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := t.Context()
	key := "strategy-test-" + rand.Text()
	if _, err := sess.Store.Save(ctx, key, record(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if rec, err := other.Store.Load(ctx, key); err != nil || string(rec.Data) != "cart" {
		t.Fatalf("Load on the other node = %q, %v; want the saved record", rec.Data, err)
	}
	failing.Store(true)
	for range 2 {
		sess.Store.Load(ctx, key)
	}
	if _, err := sess.Store.Load(ctx, key); !errors.Is(err, store.ErrUnavailable) || opened.Load() != 1 {
		t.Errorf("Load after 2 failures: %v, breaker opened %d times; want ErrUnavailable from the open breaker, once", err, opened.Load())
	}
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestTestbedSkips checks that a testbed whose service is missing, or
// cannot be run by the lab, is skipped with the reason.
func TestTestbedSkips(t *testing.T) {
	dead := deadAddr(t)
	for _, tc := range []struct {
		name string
		set  func(*strategy.Settings)
		want string
	}{
		{"redis", func(s *strategy.Settings) { s.RedisURL = "redis://" + dead + "/0" }, "nothing answers at " + dead},
		{"redis", func(s *strategy.Settings) { s.RedisURL = "redis://127.0.0.1:7000,127.0.0.1:7001" }, "one standalone Redis"},
		{"redis", func(s *strategy.Settings) { s.RedisURL = "http://x" }, "redisstore: URL"},
		{"postgres", func(s *strategy.Settings) { s.PostgresURL = "postgres://postgres@" + dead + "/postgres" }, "nothing answers at " + dead},
		{"postgres", func(s *strategy.Settings) { s.PostgresURL = "not a url" }, "is not a URL with a host"},
		{"memcached", func(s *strategy.Settings) { s.MemcachedAddrs = "127.0.0.1:11211," + dead }, "nothing answers at " + dead},
		{"memcached", func(s *strategy.Settings) { s.MemcachedAddrs = "nonsense" }, "is not host:port"},
	} {
		st, _ := strategy.Lookup(tc.name)
		s := strategy.Defaults()
		tc.set(&s)
		tb, err := st.Testbed(t.Context(), strategy.TestbedConfig{Nodes: 2, Settings: s})
		if err == nil {
			tb.Close()
		}
		if !errors.Is(err, strategy.ErrSkip) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s testbed: %v; want ErrSkip with %q", tc.name, err, tc.want)
		}
	}
}

// TestTestbedRedis runs two nodes on the test Redis through a proxy: the
// nodes dial the proxy's address, share their sessions, and keep them
// apart from a served node's (a key prefix of their own).
func TestTestbedRedis(t *testing.T) {
	rs, _ := strategy.Lookup("redis")
	s := strategy.Defaults()
	s.RedisURL = redisURL(t)
	var proxied []string
	dead := deadAddr(t)
	for _, proxy := range []string{"server", "dead"} {
		tb, err := rs.Testbed(t.Context(), strategy.TestbedConfig{Nodes: 2, Settings: s,
			Proxy: func(addr string) (string, error) {
				proxied = append(proxied, addr)
				if proxy == "dead" {
					return dead, nil
				}
				return addr, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		n1, err := tb.Open(t.Context(), 0, strategy.Node{Name: "n1"})
		if proxy == "dead" {
			if err == nil {
				n1.Close()
				t.Error("a node opened with the proxy's address dead; want it to dial the proxy")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		defer n1.Close()
		n2, err := tb.Open(t.Context(), 1, strategy.Node{Name: "n2"})
		if err != nil {
			t.Fatal(err)
		}
		defer n2.Close()
		if _, err := tb.Open(t.Context(), 2, strategy.Node{Name: "n3"}); err == nil {
			t.Error("Open of node 2 of 2: no error")
		}
		served, err := rs.Open(t.Context(), strategy.Node{Name: "s1", Settings: s})
		if err != nil {
			t.Fatal(err)
		}
		defer served.Close()
		ctx := t.Context()
		if _, err := n1.Store.Save(ctx, "a", record(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := n2.Store.Load(ctx, "a"); err != nil {
			t.Errorf("node 2 Load: %v; want node 1's session", err)
		}
		if _, err := served.Store.Load(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("served node Load: %v; want ErrNotFound (the testbed's own prefix)", err)
		}
	}
	redisAddr := strings.TrimPrefix(strings.Split(s.RedisURL, "/0")[0], "redis://")
	if len(proxied) != 2 || proxied[0] != redisAddr {
		t.Errorf("Proxy called with %v; want the Redis address %s once per testbed", proxied, redisAddr)
	}
}

// TestTestbedPostgres runs a node on the test PostgreSQL: it works, and a
// dead proxy address is what it dials.
func TestTestbedPostgres(t *testing.T) {
	url := os.Getenv("SESSIONKIT_POSTGRES_URL")
	if url == "" {
		url = strategy.DefaultPostgresURL
	}
	pg, _ := strategy.Lookup("postgres")
	s := strategy.Defaults()
	s.PostgresURL = url
	tb, err := pg.Testbed(t.Context(), strategy.TestbedConfig{Nodes: 1, Settings: s})
	if errors.Is(err, strategy.ErrSkip) {
		testenv.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	n1, err := tb.Open(t.Context(), 0, strategy.Node{Name: "n1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	key := "k" + rand.Text()
	if _, err := n1.Store.Save(t.Context(), key, record(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if rec, err := n1.Store.Load(t.Context(), key); err != nil || string(rec.Data) != "cart" {
		t.Errorf("Load = %q, %v; want the saved record", rec.Data, err)
	}
}

// TestTestbedMemory: each node has its own sessions; a killed node
// restarts empty.
func TestTestbedMemory(t *testing.T) {
	mem, _ := strategy.Lookup("memory")
	tb, err := mem.Testbed(t.Context(), strategy.TestbedConfig{Nodes: 2, Settings: strategy.Defaults()})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	ctx := t.Context()
	var counted atomic.Int32
	node := strategy.Node{Name: "n1", Wrap: counting(&counted, nil)}
	n1, err := tb.Open(ctx, 0, node)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := tb.Open(ctx, 1, strategy.Node{Name: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if _, err := n1.Store.Save(ctx, "a", record(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Store.Load(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("node 2 Load: %v; want ErrNotFound (nothing shared)", err)
	}
	n1.Kill()
	n1, err = tb.Open(ctx, 0, node)
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	if _, err := n1.Store.Load(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load after restart: %v; want ErrNotFound (the killed node's memory is gone)", err)
	}
	if counted.Load() != 2 {
		t.Errorf("Wrap counted %d calls; want 2", counted.Load())
	}
}

// TestOpenTokensJWKS opens a token node with --token-format jwt: a codec,
// no store, and the ring's public keys served in front of the app.
func TestOpenTokensJWKS(t *testing.T) {
	key, err := token.NewKey(token.EdDSA, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewRing(key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := ring.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tok, _ := strategy.Lookup("token")
	s := strategy.Defaults()
	s.Keys, s.TokenFormat = file, "jwt"
	sess, err := tok.Open(t.Context(), strategy.Node{Name: "t1", Settings: s, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if sess.Tokens == nil || sess.Store != nil {
		t.Fatalf("Sessions = %+v; want a token codec and no store", sess)
	}
	h := sess.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	var jwks struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(rec.Body.Bytes(), &jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0].Kid != key.ID {
		t.Errorf("JWKS: %d %s (%v); want the key %s", rec.Code, rec.Body, err, key.ID)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/cart", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("GET /cart: %d; want the app's answer", rec.Code)
	}
}

// TestTestbedNATS runs three nodes, each with an embedded NATS node: a
// session saved on one is read on another, and a killed node comes back
// on its directory and reads it too.
func TestTestbedNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	nats, _ := strategy.Lookup("nats")
	if _, err := nats.Testbed(t.Context(), strategy.TestbedConfig{Nodes: 3}); err == nil {
		t.Error("a nats testbed without Dir: no error")
	}
	tb, err := nats.Testbed(t.Context(), strategy.TestbedConfig{Nodes: 3, Dir: t.TempDir(),
		Settings: strategy.Defaults(), Logger: discard(), FreeAddrs: func(n int) ([]string, error) {
			addrs := make([]string, n)
			for i := range addrs {
				addrs[i] = deadAddr(t)
			}
			return addrs, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var nodes []*strategy.Sessions
	for i := range 3 {
		n, err := tb.Open(ctx, i, strategy.Node{Name: "n" + string(rune('1'+i)), Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { nodes[i].Close() }()
		nodes = append(nodes, n)
	}
	if _, err := nodes[0].Store.Save(ctx, "a", record(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Store.Load(ctx, "a"); err != nil {
		t.Errorf("node 2 Load: %v; want node 1's session", err)
	}
	nodes[2].Kill()
	if nodes[2], err = tb.Open(ctx, 2, strategy.Node{Name: "n3", Logger: discard()}); err != nil {
		t.Fatal(err)
	}
	if rec, err := nodes[2].Store.Load(ctx, "a"); err != nil || string(rec.Data) != "cart" {
		t.Errorf("restarted node Load = %q, %v; want the session", rec.Data, err)
	}
}
