package bench

// BenchmarkStoreOps measures the stores themselves, without HTTP or the
// Manager: one Load, or one Save (a compare-and-set with the version the
// last Save returned), of a 200-byte session, at conc=1 and conc=64
// (each goroutine on its own session, so no run measures conflicts).
// Sub-benchmarks are op=X/conc=N/impl=Y, so that `benchstat -col /impl`
// puts the stores side by side:
//
//	impl=redis          redisstore on the Redis at SESSIONKIT_REDIS_ADDR
//	impl=nats           natsstore on the NATS server at SESSIONKIT_NATS_ADDR
//	                    (one node, bucket Replicas 1)
//	impl=nats-cluster3  natsstore on a 3-node NATS cluster embedded in this
//	                    process (bucket Replicas 3, Raft): the distributed-
//	                    cache strategy's price for surviving a node's loss
//	impl=olric-cluster3 olricstore on a 3-member Olric cluster embedded in
//	                    this process (ReplicaCount 2), through the store of
//	                    one member: a third of the sessions are its own,
//	                    the others are owned by the two other members; every
//	                    Save is a compare-and-set under a cluster lock
//
// Run it with scripts/bench -bench StoreOps.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/natsstore"
	"github.com/sessionkit/sessionkit/store/olricstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

type namedStore struct {
	name string
	st   store.Store
}

func BenchmarkStoreOps(b *testing.B) {
	ctx, cancel := context.WithTimeout(b.Context(), setupTimeout)
	defer cancel()
	var stores []namedStore

	if addr := testenv.TCPAddr(b, "SESSIONKIT_REDIS_ADDR", redisstore.DefaultAddr); addr != "" {
		rs, err := redisstore.New(ctx, redisstore.Config{Addrs: []string{addr}, KeyPrefix: uniqueName() + ":"})
		if err != nil {
			b.Fatalf("redisstore: %v", err)
		}
		b.Cleanup(func() { rs.Close() })
		stores = append(stores, namedStore{"redis", rs})
	}
	if addr := testenv.TCPAddr(b, "SESSIONKIT_NATS_ADDR", "127.0.0.1:4222"); addr != "" {
		stores = append(stores, namedStore{"nats", natsStore(b, ctx, "nats://"+addr, 1)})
	}
	stores = append(stores, namedStore{"nats-cluster3", natsStore(b, ctx, natsCluster(b), 3)})
	stores = append(stores, namedStore{"olric-cluster3", olricStore(b, ctx, olricCluster(b))})
	benchStoreOps(b, stores)
}

// natsStore opens a store on a fresh bucket of the server at url and
// deletes the bucket at the end.
func natsStore(b *testing.B, ctx context.Context, url string, replicas int) store.Store {
	bucket := uniqueName()
	ns, err := natsstore.New(ctx, natsstore.Config{URL: url, Bucket: bucket, Replicas: replicas, SweepInterval: -1})
	if err != nil {
		b.Fatalf("natsstore at %s: %v", url, err)
	}
	b.Cleanup(func() {
		ns.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nc, err := nats.Connect(url)
		if err != nil {
			b.Errorf("cleanup: %v", err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err == nil {
			err = js.DeleteKeyValue(ctx, bucket)
		}
		if err != nil {
			b.Errorf("cleanup: delete bucket %s: %v", bucket, err)
		}
	})
	return ns
}

// natsCluster starts a 3-node NATS cluster in this process on free
// loopback ports and returns the client URL of its first node.
func natsCluster(b *testing.B) string {
	var routes []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		routes = append(routes, l.Addr().String())
		l.Close()
	}
	dir := b.TempDir()
	var url string
	for i := range 3 {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		n, err := natsstore.StartNode(natsstore.NodeConfig{
			Name:        fmt.Sprintf("n%d", i),
			Dir:         filepath.Join(dir, fmt.Sprintf("n%d", i)),
			ClusterAddr: routes[i],
			Peers:       peers,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(n.Shutdown)
		if i == 0 {
			url = n.ClientURL()
		}
	}
	return url
}

// olricCluster starts a 3-member Olric cluster in this process on free
// loopback ports (Olric cannot pick its own port: a start that finds one
// taken is retried on others) and returns its first member.
func olricCluster(b *testing.B) *olricstore.Member {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var last error
	for range 3 {
		var addrs []string
		for range 6 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			addrs = append(addrs, l.Addr().String())
			l.Close()
		}
		var members []*olricstore.Member
		var err error
		for i := range 3 {
			var peers []string
			for j := range i {
				peers = append(peers, addrs[2*j+1])
			}
			var m *olricstore.Member
			m, err = olricstore.StartMember(olricstore.MemberConfig{
				Addr: addrs[2*i], ClusterAddr: addrs[2*i+1], Peers: peers, Network: "local", Logger: quiet,
			})
			if err != nil {
				break
			}
			members = append(members, m)
		}
		if err == nil {
			b.Cleanup(func() {
				for _, m := range members {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					m.Shutdown(ctx)
					cancel()
				}
			})
			return members[0]
		}
		for _, m := range members {
			m.Shutdown(context.Background())
		}
		last = err
	}
	b.Fatal(last)
	return nil
}

// olricStore opens a store on a fresh DMap of the member and waits until
// the member sees the whole cluster.
func olricStore(b *testing.B, ctx context.Context, m *olricstore.Member) store.Store {
	// Timeout 10 s, not 2: three members and 64 goroutines share two
	// cores with the other stores' servers, and one slow call in a
	// thousand would otherwise end the run.
	ost, err := olricstore.New(ctx, olricstore.Config{Member: m, DMap: uniqueName(), Timeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatalf("olricstore: %v", err)
	}
	b.Cleanup(func() { ost.Close() })
	for {
		st, err := ost.Stats(ctx)
		if err == nil && st.Members == 3 {
			return ost
		}
		if ctx.Err() != nil {
			b.Fatalf("olricstore: %d members (err %v); want 3", st.Members, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func benchStoreOps(b *testing.B, stores []namedStore) {
	p, goroutines := parallelism(highConc)
	data := make([]byte, 200)
	expires := time.Now().Add(time.Hour)
	// Every store gets one session per goroutine, saved before the timer
	// starts; versions[i][g] is the version of store i's session g.
	versions := make([][]atomic.Uint64, len(stores))
	for i, s := range stores {
		versions[i] = make([]atomic.Uint64, goroutines)
		for g := range goroutines {
			v, err := s.st.Save(b.Context(), fmt.Sprintf("s%d", g), store.Record{Data: data, Expires: expires})
			if err != nil {
				b.Fatalf("%s: Save: %v", s.name, err)
			}
			versions[i][g].Store(v)
		}
	}
	ops := []struct {
		name string
		do   func(ctx context.Context, st store.Store, g int, version *atomic.Uint64) error
	}{
		{"load", func(ctx context.Context, st store.Store, g int, _ *atomic.Uint64) error {
			_, err := st.Load(ctx, fmt.Sprintf("s%d", g))
			return err
		}},
		{"save", func(ctx context.Context, st store.Store, g int, version *atomic.Uint64) error {
			v, err := st.Save(ctx, fmt.Sprintf("s%d", g), store.Record{Data: data, Version: version.Load(), Expires: expires})
			if err == nil {
				version.Store(v)
			}
			return err
		}},
	}
	for _, op := range ops {
		for _, conc := range []int{1, highConc} {
			for i, s := range stores {
				b.Run(fmt.Sprintf("op=%s/conc=%d/impl=%s", op.name, conc, s.name), func(b *testing.B) {
					b.ReportAllocs()
					if conc == 1 {
						for b.Loop() {
							if err := op.do(b.Context(), s.st, 0, &versions[i][0]); err != nil {
								b.Fatal(err)
							}
						}
						return
					}
					b.SetParallelism(p)
					var next atomic.Int64
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						g := int(next.Add(1)-1) % goroutines
						for pb.Next() {
							if err := op.do(b.Context(), s.st, g, &versions[i][g]); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		}
	}
}
