package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/natsstore"
)

// TestReplace replaces the nodes of a 3-node cluster one at a time, as an
// operator replaces machines: n1, n2 and n3 (one process each, a bucket of
// Replicas 3) hold sessions; one of them (the stream's leader) is killed
// with SIGKILL; n4, a new node (new name, empty data directory, the two
// survivors as peers), starts; once the dead node has been removed and the
// bucket's stream has its third replica on n4, a second original node is
// killed. Every session must then be readable and writable through the
// last original node and n4 within a bounded window: the meta group and the
// stream must count the two survivors and n4, not the first dead node, so
// that the last two are a majority.
func TestReplace(t *testing.T) {
	const (
		sessions = 1000
		bucket   = "replace"
		// window bounds the time from the second kill to reads and
		// writes through the two survivors: elections of the meta
		// group's and the stream's leaders (4 to 9 s each, concurrent)
		// and the clients' reconnects, with room for a loaded machine.
		window = 45 * time.Second
		// healLimit bounds the wait for the dead node's removal and the
		// new replica: RemoveDeadAfter after the meta leader last heard
		// from n2, then placing the replica and catching it up.
		healLimit = 90 * time.Second
	)
	routes := freeAddrs(t, 4)
	clients := freeAddrs(t, 4)
	dir := t.TempDir()
	cfg := func(i int, peers ...int) natsstore.NodeConfig {
		c := natsstore.NodeConfig{
			Name:        fmt.Sprintf("n%d", i+1),
			Dir:         filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			ClientAddr:  clients[i],
			ClusterAddr: routes[i],
		}
		for _, p := range peers {
			c.Peers = append(c.Peers, routes[p])
		}
		return c
	}
	nodes := []*procNode{
		startProcNode(t, cfg(0, 1, 2)),
		startProcNode(t, cfg(1, 0, 2)),
		startProcNode(t, cfg(2, 0, 1)),
	}
	stores := make([]*natsstore.Store, 4)
	for i, n := range nodes {
		stores[i] = newBucketStoreNamed(t, n.Info, bucket, 3)
		t.Cleanup(func() { stores[i].Close() })
	}

	ctx := t.Context()
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	key := func(i int) string { return fmt.Sprintf("cart/%04d", i) }
	data := func(i, gen int) []byte { return fmt.Appendf(nil, "cart %d, generation %d", i, gen) }
	versions := make([]uint64, sessions)
	testenv.Parallel(t, 16, sessions, func(i int) error {
		v, err := stores[i%3].Save(ctx, key(i), store.Record{Data: data(i, 0), Expires: expires, UserID: fmt.Sprintf("user%d", i%20)})
		if err != nil {
			return fmt.Errorf("Save(%q): %w", key(i), err)
		}
		versions[i] = v
		return nil
	})

	// The node leading the bucket's stream dies (the worst case: the
	// stream elects a leader while it is short of a replica); n4, a new
	// node, replaces it.
	name := func(i int) string { return fmt.Sprintf("n%d", i+1) }
	first := slices.IndexFunc(nodes, func(n *procNode) bool { return n.cfg.Name == streamLeader(t, nodes[0].Info, bucket) })
	var survivors []int
	for i := range nodes {
		if i != first {
			survivors = append(survivors, i)
		}
	}
	nodes[first].Kill()
	stores[first].Close()
	killed := time.Now()
	t.Logf("killed %s, the stream's leader", name(first))
	nodes = append(nodes, startProcNode(t, cfg(3, survivors...)))
	stores[3] = newBucketStoreNamed(t, nodes[3].Info, bucket, 3)
	t.Cleanup(func() { stores[3].Close() })
	t.Logf("n4 started and serves the bucket %v after the kill", time.Since(killed).Round(time.Millisecond))

	// Wait until the stream's replicas are the two survivors and n4, all
	// current: the dead node removed, its replica placed on n4 and caught
	// up.
	want := []string{name(survivors[0]), name(survivors[1]), "n4"}
	var state string
	healed := false
	for deadline := time.Now().Add(healLimit); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var peers []string
		peers, state = streamPeers(t, nodes[3].Info, bucket)
		if slices.Equal(peers, want) {
			healed = true
			break
		}
	}
	if healed {
		t.Logf("the bucket's stream is on %v, all current, %v after the kill of %s", want, time.Since(killed).Round(time.Millisecond), name(first))
	} else {
		// Go on: what follows shows what that costs.
		t.Errorf("the bucket's stream is not on %v, all current, %v after the kill of %s: %s", want, healLimit, name(first), state)
	}

	// Another original node dies, the stream's leader if it is one; the
	// last original node and n4 must serve every session.
	second, last := survivors[0], survivors[1]
	if leader := streamLeader(t, nodes[3].Info, bucket); leader == name(last) {
		second, last = last, second
	}
	nodes[second].Kill()
	stores[second].Close()
	down := time.Now()
	t.Logf("killed %s", name(second))
	via := []*natsstore.Store{stores[last], stores[3]}
	viaNames := []string{name(last), "n4"}
	var lastErr error
	for i, s := range via {
		probe := fmt.Sprintf("probe/%d", i)
		for {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := s.Save(pctx, probe, store.Record{Data: []byte("x"), Expires: expires})
			if err == nil || errors.Is(err, store.ErrConflict) {
				_, err = s.Load(pctx, key(1))
			}
			cancel()
			if err == nil {
				break
			}
			lastErr = err
			if time.Since(down) > window {
				t.Fatalf("no write and read through %s within %v of killing %s; last error: %v", viaNames[i], window, name(second), lastErr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("first write and read through %v %v after the kill of %s", viaNames, time.Since(down).Round(time.Millisecond), name(second))
	if err := metaAnswers(ctx, nodes[3].Info, window-time.Since(down)); err != nil {
		t.Fatalf("the JetStream meta group has no leader %v after the kill of %s: %v", window, name(second), err)
	}

	// Every session readable with its version and data, then writable
	// with that version, through n1 and n4 in turn.
	start := time.Now()
	testenv.Parallel(t, 16, sessions, func(i int) error {
		s := via[i%2]
		rec, err := s.Load(ctx, key(i))
		if err != nil {
			return fmt.Errorf("Load(%q) after the second kill: %w", key(i), err)
		}
		if rec.Version != versions[i] || string(rec.Data) != string(data(i, 0)) {
			return fmt.Errorf("Load(%q) after the second kill: got version %d data %q; want %d %q", key(i), rec.Version, rec.Data, versions[i], data(i, 0))
		}
		rec.Data = data(i, 1)
		if versions[i], err = s.Save(ctx, key(i), rec); err != nil {
			return fmt.Errorf("Save(%q, version %d) after the second kill: %w", key(i), rec.Version, err)
		}
		return nil
	})
	t.Logf("all %d sessions read and written again through %v in %v", sessions, viaNames, time.Since(start).Round(time.Millisecond))
}

// streamPeers returns the sorted names of the servers holding the bucket's
// stream (leader and current replicas) and a description of its state.
// A replica that is offline or not current is left out.
func streamPeers(t *testing.T, url, bucket string) ([]string, string) {
	info, err := streamInfo(t, url, bucket)
	if err != nil {
		return nil, err.Error()
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return nil, "no leader"
	}
	peers := []string{info.Cluster.Leader}
	desc := []string{info.Cluster.Leader + " (leader)"}
	for _, r := range info.Cluster.Replicas {
		d := r.Name
		switch {
		case r.Offline:
			d += " (offline)"
		case !r.Current:
			d += fmt.Sprintf(" (lag %d)", r.Lag)
		default:
			peers = append(peers, r.Name)
		}
		desc = append(desc, d)
	}
	slices.Sort(peers)
	return peers, "replicas " + strings.Join(desc, ", ")
}

// metaAnswers returns nil once the JetStream meta group answers an
// account-info request (its leader answers those), or the last error after
// limit.
func metaAnswers(ctx context.Context, url string, limit time.Duration) error {
	js, closeJS, err := jetstreamAt(url)
	if err != nil {
		return err
	}
	defer closeJS()
	deadline := time.Now().Add(limit)
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err = js.AccountInfo(actx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
