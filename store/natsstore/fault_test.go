package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/natsstore"
)

// nodeEnv names the environment variable that turns the test binary into
// one NATS node of a crash test (see TestMain).
const nodeEnv = "SESSIONKIT_NATSSTORE_TEST_NODE"

// TestMain lets the test binary run as a cluster node in its own process,
// so that the crash test can kill a node with SIGKILL: no graceful
// shutdown, no Raft leadership handed over, whatever was in its memory
// gone. The node runs until it is killed or its parent goes away.
func TestMain(m *testing.M) {
	var cfg natsstore.NodeConfig
	if testenv.IsChild(nodeEnv, &cfg) {
		n, err := natsstore.StartNode(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		testenv.ChildReady(n.ClientURL())
		n.Shutdown()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// procNode is a cluster node running in a child process.
type procNode struct {
	cfg natsstore.NodeConfig
	*testenv.Child
}

// startProcNode starts a node process and waits until it accepts clients.
// startProcCluster starts n node processes named n0, n1, ... that name each
// other as peers.
func startProcCluster(t *testing.T, n int) []*procNode {
	routes, clients := freeAddrs(t, n), freeAddrs(t, n)
	dir := t.TempDir()
	nodes := make([]*procNode, n)
	for i := range nodes {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		nodes[i] = startProcNode(t, natsstore.NodeConfig{
			Name:        fmt.Sprintf("n%d", i),
			Dir:         filepath.Join(dir, fmt.Sprintf("n%d", i)),
			ClientAddr:  clients[i],
			ClusterAddr: routes[i],
			Peers:       peers,
		})
	}
	return nodes
}

func startProcNode(t *testing.T, cfg natsstore.NodeConfig) *procNode {
	t.Helper()
	return &procNode{cfg: cfg, Child: testenv.StartChild(t, nodeEnv, cfg)}
}

// TestCrash is the fault test: a 3-node cluster (one process per node)
// with a bucket of Replicas 3 holds 10,000 sessions, one of them deleted.
// It kills the bucket's Raft leader with SIGKILL and checks that writes and
// reads resume through the other two nodes within a bounded window and
// that every acknowledged session is there, and the deleted one is not;
// then it restarts the killed node on its disk, waits until it has caught
// up, kills another original node, and checks again.
func TestCrash(t *testing.T) {
	const (
		sessions = 10000
		writers  = 64
		// window bounds the time from a kill to the first successful
		// write and read through the surviving nodes. docs say what it
		// is made of: NATS Raft's election timeout (4 to 9 s) after the
		// leader's loss is noticed, plus a client's reconnect.
		window = 30 * time.Second
	)
	nodes := startProcCluster(t, 3)
	stores := make([]*natsstore.Store, 3)
	for i, n := range nodes {
		stores[i] = newBucketStoreNamed(t, n.Info, "crash", 3)
		t.Cleanup(func() { stores[i].Close() })
	}
	ctx := t.Context()
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	key := func(i int) string { return fmt.Sprintf("session/%05d", i) }
	data := func(i int) []byte { return fmt.Appendf(nil, "data of session %d", i) }
	user := func(i int) string {
		if i%10 == 0 { // some sessions are bound to a user, as after a login
			return fmt.Sprintf("user%d", i/10)
		}
		return ""
	}

	versions := make([]uint64, sessions)
	start := time.Now()
	testenv.Parallel(t, writers, sessions, func(i int) error {
		v, err := stores[i%3].Save(ctx, key(i), store.Record{Data: data(i), Expires: expires, UserID: user(i)})
		if err != nil {
			return fmt.Errorf("Save(%q): %w", key(i), err)
		}
		versions[i] = v
		return nil
	})
	took := time.Since(start)
	t.Logf("wrote %d sessions with %d writers through 3 nodes in %v (%.0f/s)", sessions, writers, took.Round(time.Millisecond), sessions/took.Seconds())

	const deleted = 7
	if err := stores[0].Delete(ctx, key(deleted), versions[deleted]); err != nil {
		t.Fatalf("Delete(%q): %v", key(deleted), err)
	}

	// checkAll loads every session through the stores in via: all there
	// with the data and version acknowledged, the deleted one gone.
	checkAll := func(stage string, via []*natsstore.Store) {
		t.Helper()
		var lost atomic.Int64
		start := time.Now()
		testenv.Parallel(t, 16, sessions, func(i int) error {
			rec, err := via[i%len(via)].Load(ctx, key(i))
			switch {
			case i == deleted && errors.Is(err, store.ErrNotFound):
				return nil
			case i == deleted:
				return fmt.Errorf("%s: Load(%q) of the session deleted before the failure: got %v, %v; want %v", stage, key(i), rec.Version, err, store.ErrNotFound)
			case errors.Is(err, store.ErrNotFound):
				lost.Add(1)
				return nil
			case err != nil:
				return fmt.Errorf("%s: Load(%q): %w", stage, key(i), err)
			case rec.Version != versions[i] || string(rec.Data) != string(data(i)):
				return fmt.Errorf("%s: Load(%q): got version %d data %q; want %d %q", stage, key(i), rec.Version, rec.Data, versions[i], data(i))
			}
			return nil
		})
		if n := lost.Load(); n > 0 {
			t.Fatalf("%s: %d of %d sessions lost", stage, n, sessions-1)
		}
		t.Logf("%s: all %d sessions there, the deleted one gone (read in %v)", stage, sessions-1, time.Since(start).Round(time.Millisecond))
	}

	// failover kills the node that leads the bucket's stream (the worst
	// case: writes stop until a new leader is elected) and measures how
	// long until a write and a read succeed through the survivors.
	failover := func(stage string, candidates []int) (killed int) {
		t.Helper()
		leader := streamLeader(t, nodes[candidates[0]].Info, "crash")
		killed = candidates[0]
		for _, c := range candidates {
			if nodes[c].cfg.Name == leader {
				killed = c
			}
		}
		var survivors []*natsstore.Store
		for i, s := range stores {
			if i != killed && s != nil {
				survivors = append(survivors, s)
			}
		}
		down := time.Now()
		nodes[killed].Kill()
		probe := "probe/" + stage
		var writeAt, readAt time.Duration
		for writeAt == 0 || readAt == 0 {
			if time.Since(down) > window {
				t.Fatalf("%s: no successful write (%v) or read (%v) within %v of killing %s", stage, writeAt, readAt, window, nodes[killed].cfg.Name)
			}
			// Short attempts, so that one stuck in the kill does not
			// hide how soon the next one succeeds.
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			if writeAt == 0 {
				// Version 0 (create), so a retry after an attempt that
				// timed out but was applied fails instead of lying.
				if _, err := survivors[0].Save(pctx, probe, store.Record{Data: []byte("x"), Expires: expires}); err == nil || errors.Is(err, store.ErrConflict) {
					writeAt = time.Since(down)
				}
			}
			if readAt == 0 {
				if _, err := survivors[len(survivors)-1].Load(pctx, key(1)); err == nil {
					readAt = time.Since(down)
				}
			}
			cancel()
		}
		t.Logf("%s: killed %s (leader %s); first write after %v, first read after %v", stage, nodes[killed].cfg.Name, leader,
			writeAt.Round(time.Millisecond), readAt.Round(time.Millisecond))
		checkAll(stage, survivors)
		return killed
	}

	first := failover("leader killed", []int{0, 1, 2})
	stores[first].Close()
	stores[first] = nil

	// Bring the node back on its own disk and wait until every replica
	// of the bucket is current, as an operator would before the next
	// maintenance, then lose another of the original nodes.
	nodes[first] = startProcNode(t, nodes[first].cfg)
	stores[first] = newBucketStoreNamed(t, nodes[first].Info, "crash", 3)
	t.Cleanup(func() { stores[first].Close() })
	waitCurrent(t, nodes[first].Info, "crash", 60*time.Second)
	var others []int
	for i := range nodes {
		if i != first {
			others = append(others, i)
		}
	}
	failover("another node killed after the first came back", others)
}

func streamInfo(t *testing.T, url, bucket string) (*jetstream.StreamInfo, error) {
	js, closeJS, err := jetstreamAt(url)
	if err != nil {
		return nil, err
	}
	defer closeJS()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

// streamLeader returns the name of the node leading the bucket's stream.
func streamLeader(t *testing.T, url, bucket string) string {
	t.Helper()
	info, err := streamInfo(t, url, bucket)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream info: no leader in %+v", info.Cluster)
	}
	return info.Cluster.Leader
}

// waitCurrent waits until the bucket's stream has a leader and two
// replicas, both current.
func waitCurrent(t *testing.T, url, bucket string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < limit {
		info, err := streamInfo(t, url, bucket)
		switch {
		case err != nil:
			last = err.Error()
		case info.Cluster == nil || info.Cluster.Leader == "":
			last = "no leader"
		default:
			current := 0
			for _, r := range info.Cluster.Replicas {
				if r.Current && !r.Offline {
					current++
				}
			}
			if current == 2 {
				t.Logf("all replicas current %v after the restart", time.Since(start).Round(time.Millisecond))
				return
			}
			last = fmt.Sprintf("%d of 2 replicas current", current)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("replicas not current within %v: %s", limit, last)
}
