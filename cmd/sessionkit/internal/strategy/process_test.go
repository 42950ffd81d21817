package strategy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
)

// TestArgs: a node's serve flags are those of its strategy that differ
// from their defaults and that it uses with its settings.
func TestArgs(t *testing.T) {
	s := strategy.Defaults()
	memory, _ := strategy.Lookup("memory")
	if got := memory.Args(&s); len(got) != 0 {
		t.Errorf("memory with the defaults: %q; want no flag", got)
	}
	s.RedisURL, s.ClusterAddr, s.NATSURL = "redis://127.0.0.1:7000/1", "127.0.0.1:9", "nats://127.0.0.1:1"
	redis, _ := strategy.Lookup("redis")
	if got := redis.Args(&s); !slices.Equal(got, []string{"--redis=redis://127.0.0.1:7000/1"}) {
		t.Errorf("redis: %q; want only --redis", got)
	}
	nats, _ := strategy.Lookup("nats")
	// With --cluster-addr, --nats does not apply.
	if got := nats.Args(&s); !slices.Equal(got, []string{"--cluster-addr=127.0.0.1:9"}) {
		t.Errorf("nats: %q; want only --cluster-addr", got)
	}
}

// TestPlanNATS_restartAndReplace: a restarted node keeps its name's data
// directory and its cluster address; a replacement gets its own, and the
// other nodes then name it as their peer.
func TestPlanNATS_restartAndReplace(t *testing.T) {
	port := 20000
	free := func(n int) ([]string, error) {
		var out []string
		for range n {
			port++
			out = append(out, fmt.Sprintf("127.0.0.1:%d", port))
		}
		return out, nil
	}
	nats, _ := strategy.Lookup("nats")
	dir := t.TempDir()
	p, err := nats.Plan(t.Context(), strategy.TestbedConfig{Nodes: 3, Dir: dir, Settings: strategy.Defaults(), FreeAddrs: free})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	args := func(i int, how strategy.Start, name string) string {
		a, err := p.Args(i, how, name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(a, " ")
	}
	first := args(2, strategy.First, "n3")
	if again := args(2, strategy.Restart, "n3"); again != first || !strings.Contains(first, "nats-n3") {
		t.Errorf("restart: %q; want %q, on n3's directory", again, first)
	}
	replaced := args(2, strategy.Replace, "n4")
	if replaced == first || !strings.Contains(replaced, "nats-n4") || !strings.Contains(replaced, "127.0.0.1:20004") {
		t.Errorf("replace: %q; want n4's directory and a new cluster address", replaced)
	}
	if peer := args(0, strategy.Restart, "n1"); !strings.Contains(peer, "127.0.0.1:20004") || strings.Contains(peer, "127.0.0.1:20003") {
		t.Errorf("n1 after the replacement: %q; want n4's cluster address as a peer, not n3's", peer)
	}
}
