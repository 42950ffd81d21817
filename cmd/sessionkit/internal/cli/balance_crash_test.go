package cli_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/cli"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

// serveChildEnv holds the arguments of a child process that runs
// "sessionkit serve", for the tests that kill a node with SIGKILL.
const serveChildEnv = "SESSIONKIT_CLI_TEST_SERVE"

func TestMain(m *testing.M) {
	var args []string
	if testenv.IsChild(serveChildEnv, &args) {
		runServeChild(args)
		os.Exit(0)
	}
	code := m.Run()
	testenv.RemoveBuilt()
	os.Exit(code)
}

// runServeChild runs serve with args, tells the parent its URL, and stops
// when the parent goes away.
func runServeChild(args []string) {
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- cli.Main(ctx, args, io.Discard, stderr, func(string) string { return "" }) }()
	for {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			testenv.ChildReady(m[3])
			cancel()
			<-done
			return
		}
		select {
		case code := <-done:
			fmt.Fprintf(os.Stderr, "serve %v exited with %d:\n%s", args, code, stderr)
			os.Exit(1)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// serveChild is a "sessionkit serve" in a child process.
type serveChild struct {
	url   string
	args  []string
	child *testenv.Child
}

func startServeChild(t *testing.T, args ...string) *serveChild {
	t.Helper()
	c := testenv.StartChild(t, serveChildEnv, append([]string{"serve"}, args...))
	return &serveChild{url: c.Info, args: args, child: c}
}

// restart starts the node again on the same address, after a kill.
func (s *serveChild) restart(t *testing.T) {
	t.Helper()
	args := append(append([]string(nil), s.args...), "--addr", strings.TrimPrefix(s.url, "http://"))
	*s = *startServeChild(t, args...)
	s.args = args
}

// TestBalance_nodeKilled is the README's cluster by hand with a crash:
// three serve nodes, each a process of its own, behind balance (each
// engine). A user logs in, puts five items in the cart, and the node named
// by X-Node is killed with SIGKILL; the user's next POST /cart must reach
// another node: with Redis and --shared-sessions it goes on with the cart
// (200, six items), with in-memory sessions the answer is a clean 401. It
// was 502 on the fast engine, which sent the POST on a pooled connection
// the dead node had closed.
func TestBalance_nodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills serve processes")
	}
	for _, strategy := range []string{"memory", "redis"} {
		t.Run("strategy="+strategy, func(st *testing.T) {
			t := st
			nodeArgs := []string{"--strategy", strategy, "--insecure-cookie", "--log-level", "warn"}
			var balanceArgs []string
			if strategy == "redis" {
				addr := testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379")
				nodeArgs = append(nodeArgs, "--redis", "redis://"+addr+"/0?key_prefix=sktest"+rand.Text()[:8]+":")
				balanceArgs = append(balanceArgs, "--shared-sessions")
			}
			nodes := map[string]*serveChild{}
			for _, n := range []string{"n1", "n2", "n3"} {
				nodes[n] = startServeChild(t, append([]string{"--node", n, "--addr", "127.0.0.1:0"}, nodeArgs...)...)
				balanceArgs = append(balanceArgs, "--backend", n+"="+nodes[n].url)
			}
			for _, engine := range []string{"fast", "net/http"} {
				t.Run("engine="+engine, func(t *testing.T) {
					b := startBalance(t, nil, append(balanceArgs, "--engine", engine, "--listen", "127.0.0.1:0",
						"--admin", "127.0.0.1:0", "--health-interval", "100ms", "--health-rise", "1")...)
					for i := range 5 {
						waitAllActive(t, b.admin)
						testKillUsersNode(t, st, b.url, strategy, nodes, fmt.Sprintf("kill%d-%s", i, rand.Text()[:6]), b.stderr)
					}
				})
			}
		})
	}
}

// waitAllActive waits until the balancer whose admin API is at admin has
// every node active: a node killed and restarted has passed a check.
func waitAllActive(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var nodes []struct{ Name, State string }
		resp, err := http.Get(admin + "/nodes")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&nodes)
			resp.Body.Close()
		}
		active := 0
		for _, n := range nodes {
			if n.State == "active" {
				active++
			}
		}
		if err == nil && active == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not all active after 10s: %+v %v", nodes, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testKillUsersNode logs user in through the balancer at base, adds five
// items, kills the user's node, checks the next POST /cart and restarts
// the node (as a child of parent, for the next subtests).
func testKillUsersNode(t, parent *testing.T, base, strategy string, nodes map[string]*serveChild, user string, log *syncBuffer) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var cookie string
	post := func(path, body string) (int, string, map[string]any) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "session" {
				cookie = "session=" + c.Value
			}
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, resp.Header.Get("X-Node"), out
	}
	code, home, _ := post("/login", `{"user":"`+user+`"}`)
	if code != 200 || nodes[home] == nil {
		t.Fatalf("login: %d from %q", code, home)
	}
	for i := range 5 {
		if code, node, _ := post("/cart", fmt.Sprintf(`{"item":"i%d"}`, i)); code != 200 || node != home {
			t.Fatalf("POST /cart before the kill: %d from %s; want 200 from %s", code, node, home)
		}
	}
	nodes[home].child.Kill()
	time.Sleep(50 * time.Millisecond)
	code, node, out := post("/cart", `{"item":"after"}`)
	items, _ := out["items"].([]any)
	switch {
	case node == "" || node == home:
		t.Errorf("POST /cart after %s was killed: %d from %q; want an answer from another node\nbalance log:\n%s", home, code, node, log)
	case strategy == "memory" && code != http.StatusUnauthorized:
		t.Errorf("POST /cart after %s was killed: %d from %s; want 401 (in-memory session lost)", home, code, node)
	case strategy != "memory" && (code != 200 || len(items) != 6):
		t.Errorf("POST /cart after %s was killed: %d from %s with %v; want 200 and six items", home, code, node, out)
	}
	nodes[home].restart(parent)
}
