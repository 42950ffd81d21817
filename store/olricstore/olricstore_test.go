package olricstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/olricstore"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// quiet is the logger of the test members and stores; set
// SESSIONKIT_TEST_OLRIC_LOG to see their warnings and errors (Olric's
// and the stores', such as a cluster client's failed routing-table
// fetches) on stderr.
var quiet = func() *slog.Logger {
	if os.Getenv("SESSIONKIT_TEST_OLRIC_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}()

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago, for TCP and UDP (memberlist uses both).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var closers []io.Closer
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, l)
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		closers = append(closers, u)
		out = append(out, addr)
	}
	for _, c := range closers {
		c.Close()
	}
	return out
}

// memberConfigs returns the configs of an n-member cluster on free
// loopback ports, each member's peers being the others.
func memberConfigs(t testing.TB, n int) []olricstore.MemberConfig {
	addrs := freeAddrs(t, 2*n)
	cfgs := make([]olricstore.MemberConfig, n)
	for i := range cfgs {
		var peers []string
		for j := range n {
			if j != i {
				peers = append(peers, addrs[2*j+1])
			}
		}
		cfgs[i] = olricstore.MemberConfig{
			Addr:        addrs[2*i],
			ClusterAddr: addrs[2*i+1],
			Peers:       peers,
			Network:     "local",
			Logger:      quiet,
		}
	}
	return cfgs
}

// startCluster starts a 3-member cluster in this process, one member after
// another, and shuts it down when t ends. The ports were picked free and
// closed, so another socket may take one meanwhile: a failed start is
// retried on new ports.
func startCluster(t testing.TB) []*olricstore.Member {
	t.Helper()
	var last error
	for range 3 {
		var members []*olricstore.Member
		var err error
		for _, cfg := range memberConfigs(t, 3) {
			var m *olricstore.Member
			if m, err = olricstore.StartMember(cfg); err != nil {
				break
			}
			members = append(members, m)
		}
		if err == nil {
			t.Cleanup(func() {
				for _, m := range members {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					m.Shutdown(ctx)
					cancel()
				}
			})
			waitMembers(t, members, 3)
			return members
		}
		for _, m := range members {
			m.Shutdown(context.Background())
		}
		last = err
		t.Logf("starting the cluster: %v; retrying on other ports", err)
	}
	t.Fatal(last)
	return nil
}

// waitMembers waits until a store on each member sees n members.
func waitMembers(t testing.TB, members []*olricstore.Member, n int) {
	t.Helper()
	for _, m := range members {
		s := newStore(t, olricstore.Config{Member: m, DMap: "probe"})
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := s.Stats(t.Context())
			if err == nil && st.Members == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %s: %d members (err %v) after 30s; want %d", m.Name(), st.Members, err, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		s.Close()
	}
}

func newStore(t testing.TB, cfg olricstore.Config) *olricstore.Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	s, err := olricstore.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// spread is a store.Store that sends each call to the next of several
// stores (one per member), so that the conformance suite's concurrent
// writers contend through different members, as the instances of an app
// behind a load balancer do.
type spread struct {
	stores []*olricstore.Store
	next   atomic.Uint64
}

func (s *spread) pick() *olricstore.Store {
	return s.stores[s.next.Add(1)%uint64(len(s.stores))]
}

func (s *spread) Load(ctx context.Context, key string) (store.Record, error) {
	return s.pick().Load(ctx, key)
}

func (s *spread) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	return s.pick().Save(ctx, key, rec)
}

func (s *spread) Delete(ctx context.Context, key string, version uint64) error {
	return s.pick().Delete(ctx, key, version)
}

func (s *spread) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	return s.pick().Touch(ctx, key, version, expires)
}

func (s *spread) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	return s.pick().ListUser(ctx, userID)
}

func (s *spread) DeleteUser(ctx context.Context, userID string) (int, error) {
	return s.pick().DeleteUser(ctx, userID)
}

func (s *spread) Close() error {
	var errs []error
	for _, st := range s.stores {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// TestConformance runs the conformance suite on one 3-member cluster
// started by the test: through stores on the three members (Embedded) and
// through a cluster client (Client); then the user index's pruning.
func TestConformance(t *testing.T) {
	// Not parallel: the concurrency tests, bounded at 30 s, need the CPU.
	members := startCluster(t)
	t.Run("Embedded", func(t *testing.T) { conformanceEmbedded(t, members) })
	t.Run("Client", func(t *testing.T) { conformanceClient(t, members) })
	t.Run("UserIndexPrune", func(t *testing.T) { userIndexPrune(t, members) })
	t.Run("ClientSeedsDown", func(t *testing.T) { clientSeedsDown(t, members) })
}

// clientSeedsDown checks that a client store starts when its first seeds
// do not answer (members that are down), as long as one of them does.
func clientSeedsDown(t *testing.T, members []*olricstore.Member) {
	down := freeAddrs(t, 2) // nothing listens there
	s := newStore(t, olricstore.Config{Addrs: []string{down[0], down[1], members[2].Name()}, DMap: "seeds-" + rand.Text()})
	v, err := s.Save(t.Context(), "k", store.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatalf("Save through a client whose first seeds are down: %v", err)
	}
	if rec, err := s.Load(t.Context(), "k"); err != nil || rec.Version != v {
		t.Fatalf("Load: got version %d, err %v; want %d", rec.Version, err, v)
	}
}

func conformanceEmbedded(t *testing.T, members []*olricstore.Member) {
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			dmap := "storetest-" + rand.Text()
			sp := &spread{}
			for _, m := range members {
				sp.stores = append(sp.stores, newStore(t, olricstore.Config{Member: m, DMap: dmap, Now: now}))
			}
			return sp
		},
		// Every write takes a lock held by one member and writes two
		// copies; under the race detector on a shared 2-core machine 64
		// writers x 20 increments do not fit the suite's 30 s bound. 16
		// writers spread over the three members still catch any lost or
		// doubled update.
		Writers: 16,
	})
}

func conformanceClient(t *testing.T, members []*olricstore.Member) {
	addrs := []string{members[0].Name(), members[1].Name()}
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			return newStore(t, olricstore.Config{Addrs: addrs, DMap: fmt.Sprintf("client-%s", rand.Text()), Now: now})
		},
		Writers: 16,
	})
}

func TestStartMember_badConfig(t *testing.T) {
	addrs := freeAddrs(t, 2)
	for _, tc := range []struct {
		name string
		cfg  olricstore.MemberConfig
	}{
		{"no Addr", olricstore.MemberConfig{ClusterAddr: addrs[1]}},
		{"port 0", olricstore.MemberConfig{Addr: "127.0.0.1:0", ClusterAddr: addrs[1]}},
		{"unspecified host", olricstore.MemberConfig{Addr: "0.0.0.0:" + addrs[0][len("127.0.0.1:"):], ClusterAddr: addrs[1]}},
		{"same addresses", olricstore.MemberConfig{Addr: addrs[0], ClusterAddr: addrs[0]}},
		{"bad peer", olricstore.MemberConfig{Addr: addrs[0], ClusterAddr: addrs[1], Peers: []string{"nonsense"}}},
		{"quorum above copies", olricstore.MemberConfig{Addr: addrs[0], ClusterAddr: addrs[1], WriteQuorum: 3}},
		{"bad network", olricstore.MemberConfig{Addr: addrs[0], ClusterAddr: addrs[1], Network: "wan2"}},
		{"tiny table", olricstore.MemberConfig{Addr: addrs[0], ClusterAddr: addrs[1], TableSize: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := olricstore.StartMember(tc.cfg)
			if err == nil {
				m.Shutdown(context.Background())
				t.Fatalf("StartMember(%+v): got nil error; want one", tc.cfg)
			}
		})
	}
}

func TestNew_badConfig(t *testing.T) {
	for _, cfg := range []olricstore.Config{{}, {Addrs: []string{"127.0.0.1:1"}, Member: &olricstore.Member{}}} {
		if s, err := olricstore.New(t.Context(), cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v): got nil error; want one", cfg)
		}
	}
}

// TestMember_name checks that a member started on "localhost" is named by
// its resolved address, as the cluster lists it, so that its store knows
// when it is the coordinator (and sweeps).
func TestMember_name(t *testing.T) {
	addrs := freeAddrs(t, 2)
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	m, err := olricstore.StartMember(olricstore.MemberConfig{
		Addr: "localhost:" + port(addrs[0]), ClusterAddr: "localhost:" + port(addrs[1]), Network: "local", Logger: quiet,
	})
	if err != nil {
		t.Fatalf("StartMember on localhost: %v", err)
	}
	defer m.Shutdown(context.Background())
	if want := "127.0.0.1:" + port(addrs[0]); m.Name() != want {
		t.Errorf("Name(): got %q; want %q", m.Name(), want)
	}
}

// userIndexPrune binds more sessions to one user than the index keeps
// unpruned, deletes half, binds more (which prunes), and checks that every
// live session is still listed.
func userIndexPrune(t *testing.T, members []*olricstore.Member) {
	s := newStore(t, olricstore.Config{Member: members[1], DMap: "prune-" + rand.Text()})
	ctx := t.Context()
	expires := time.Now().Add(time.Hour)
	live := map[string]bool{}
	for i := range 40 {
		k := fmt.Sprintf("s%02d", i)
		v, err := s.Save(ctx, k, store.Record{Data: []byte("x"), Expires: expires, UserID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.Delete(ctx, k, v); err != nil {
				t.Fatal(err)
			}
		} else {
			live[k] = true
		}
	}
	for i := 40; i < 45; i++ {
		k := fmt.Sprintf("s%02d", i)
		if _, err := s.Save(ctx, k, store.Record{Data: []byte("x"), Expires: expires, UserID: "alice"}); err != nil {
			t.Fatal(err)
		}
		live[k] = true
	}
	entries, err := s.ListUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Key] = true
	}
	if len(got) != len(live) {
		t.Errorf("ListUser after pruning: got %d sessions; want the %d live ones", len(got), len(live))
	}
	for k := range live {
		if !got[k] {
			t.Errorf("ListUser after pruning: %s missing", k)
		}
	}
}
