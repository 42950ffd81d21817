package lab_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/lab"
	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

// The lab's nodes are `sessionkit serve` processes: the tests build the
// binary once (testenv.Sessionkit) and remove it at the end.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuilt()
	os.Exit(code)
}

// TestCountersTellTheTruth runs a short lab of every strategy with the
// node fault (a node process killed with SIGKILL and started again) and
// checks what the virtual users counted: the in-memory strategy loses the
// killed node's sessions (about a third of the users with 3 nodes) and
// nothing else does; no strategy with a store loses an acknowledged
// update, and the token strategy's updates lost to concurrent requests
// are counted; no shared strategy reads stale, and every logout is
// honoured by every node.
func TestCountersTellTheTruth(t *testing.T) {
	redis := "redis://" + testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379") + "/0"
	pg := os.Getenv("SESSIONKIT_POSTGRES_URL")
	mc := testenv.TCPAddr(t, "SESSIONKIT_MEMCACHED_ADDR", "127.0.0.1:11211")
	const users = 30
	rep, err := lab.Run(t.Context(), lab.Config{
		Binary:      testenv.Sessionkit(t),
		Strategies:  strategy.Names(),
		Users:       users,
		Duration:    4 * time.Second,
		Settle:      6 * time.Second,
		RedisURL:    redis,
		PostgresURL: pg,
		Memcached:   mc,
	})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("\n%s", table.String())
	if len(rep.Results) != len(strategy.Names()) {
		t.Fatalf("got %d results; want one per strategy (%d)", len(rep.Results), len(strategy.Names()))
	}
	for _, r := range rep.Results {
		if r.Skipped != "" {
			testenv.Missing(t, fmt.Sprintf("%s skipped: %s", r.Strategy, r.Skipped))
			continue
		}
		if r.Requests < 100 || r.Logins < users {
			t.Errorf("%s: %d requests, %d logins; want at least 100 and %d", r.Strategy, r.Requests, r.Logins, users)
		}
		// An Olric member or NATS node may take longer to join again than
		// the short run lasts: the run may end before it is back.
		members := r.Strategy == "olric" || r.Strategy == "nats"
		switch {
		case len(r.Events) == 0 || len(r.Events) > 2 || !strings.HasSuffix(r.Events[0].Label, "killed"):
			t.Errorf("%s: events %v; want the node killed and back", r.Strategy, r.Events)
		case len(r.Events) == 2 && !strings.HasSuffix(r.Events[1].Label, "back"),
			len(r.Events) == 1 && !members:
			t.Errorf("%s: events %v; want the node killed and back", r.Strategy, r.Events)
		}
		if len(r.Events) > 0 && r.Events[0].FirstOK == nil {
			t.Errorf("%s: no success after the node was killed", r.Strategy)
		}
		if r.LogoutLag.Samples == 0 || r.LogoutLag.Late > 0 && r.Strategy != "olric" {
			// A logout is honoured everywhere within the revocation
			// refresh (token, 2 s) or at once.
			t.Errorf("%s: logout lag %+v; want samples, none over 5 s", r.Strategy, r.LogoutLag)
		}
		if r.Strategy != "memory" && (r.StaleProbes == 0 || r.StaleReads != 0) {
			t.Errorf("%s: %d stale reads of %d probes; want probes and none stale", r.Strategy, r.StaleReads, r.StaleProbes)
		}
		switch {
		case r.Strategy == "token":
			// Three adds at once each get the cart in their own token;
			// the browser keeps the last cookie, so two are lost. The lab
			// must show it.
			if r.UpdatesLost == 0 {
				t.Errorf("token: no updates lost of %d; want the concurrent adds' losses reported", r.UpdatesAcked)
			}
		case r.UpdatesLost != 0:
			t.Errorf("%s: %d of %d acknowledged updates lost; want none", r.Strategy, r.UpdatesLost, r.UpdatesAcked)
		}
		switch r.Strategy {
		case "memory":
			// The users homed on the killed node: about a third.
			if r.UsersLost < users/8 || r.UsersLost > users*2/3 || r.SessionsLost < int64(r.UsersLost) {
				t.Errorf("memory: %d users lost, %d sessions, with %d users on 3 nodes; want about a third",
					r.UsersLost, r.SessionsLost, users)
			}
		default:
			if r.SessionsLost != 0 || r.UsersLost != 0 {
				t.Errorf("%s: %d sessions lost; want none (the sessions are shared)", r.Strategy, r.SessionsLost)
			}
		}
		if r.Strategy == "token" {
			// The session travels in the cookie, both ways; the only
			// store calls are revocation-list refreshes.
			if r.BytesPerRequest < 200 || r.StoreCallsPerRequest > 0.2 {
				t.Errorf("token: %.0f session bytes and %.2f store calls per request; want a sealed cart in the cookie and no store call per request",
					r.BytesPerRequest, r.StoreCallsPerRequest)
			}
		} else if r.BytesPerRequest < 20 || r.StoreCallsPerRequest <= 0.5 {
			t.Errorf("%s: %.0f session bytes and %.2f store calls per request; want a cookie and a load per request",
				r.Strategy, r.BytesPerRequest, r.StoreCallsPerRequest)
		}
	}
}

// TestStoreFault cuts the connections to Redis mid-run: requests fail
// while it is down, and no session or update is lost.
func TestStoreFault(t *testing.T) {
	redis := "redis://" + testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379") + "/0"
	rep, err := lab.Run(t.Context(), lab.Config{
		Binary:     testenv.Sessionkit(t),
		Strategies: []string{"redis"},
		// serve's circuit breaker stays open 2 s after the store's last
		// failure: the run outlasts it.
		Duration: 6 * time.Second,
		Faults:   []string{lab.FaultStore},
		RedisURL: redis,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	if r.Skipped != "" {
		t.Fatal(r.Skipped)
	}
	var labels []string
	for _, e := range r.Events {
		labels = append(labels, e.Label)
	}
	if strings.Join(labels, ",") != "store down,store back" {
		t.Errorf("events %q; want the store down and back", labels)
	}
	if r.Errors == 0 {
		t.Errorf("no errors while the store was down; want some")
	}
	if r.SessionsLost != 0 || r.UpdatesLost != 0 {
		t.Errorf("%d sessions and %d updates lost; want none", r.SessionsLost, r.UpdatesLost)
	}
	// Requests succeed again after the outage.
	last := r.Timeline[len(r.Timeline)-5:]
	ok := 0
	for _, p := range last {
		ok += p.OK
	}
	if ok <= 0 {
		t.Errorf("no successful request at the end of the run: %+v", last)
	}
}

// TestEvictFault fills the memcached strategy's Memcached mid-run: it
// evicts, and the users see sessions lost; the same run without the fault
// loses none (and the node fault, in TestCountersTellTheTruth, none
// either).
func TestEvictFault(t *testing.T) {
	testenv.Command(t, "memcached")
	for _, faults := range [][]string{{lab.FaultEvict}, {"none"}} {
		rep, err := lab.Run(t.Context(), lab.Config{
			Binary:     testenv.Sessionkit(t),
			Strategies: []string{"memcached"},
			Duration:   3 * time.Second,
			Faults:     faults,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := rep.Results[0]
		if r.Skipped != "" {
			testenv.Missing(t, "memcached skipped: "+r.Skipped)
			return
		}
		t.Logf("faults %v: %d sessions lost of %d logins, %d errors, events %+v", faults, r.SessionsLost, r.Logins, r.Errors, r.Events)
		if faults[0] == "none" {
			if r.SessionsLost != 0 {
				t.Errorf("without eviction: %d sessions lost; want none", r.SessionsLost)
			}
			continue
		}
		if len(r.Events) != 1 || !strings.HasPrefix(r.Events[0].Label, "memory pressure: ") {
			t.Errorf("events %+v; want the memory pressure", r.Events)
		}
		if r.SessionsLost == 0 {
			t.Errorf("under eviction: no session lost; want the evicted sessions counted")
		}
		if r.UpdatesLost != 0 {
			t.Errorf("under eviction: %d updates lost; want none (a lost session is counted as such)", r.UpdatesLost)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []lab.Config{
		{Strategies: []string{"couchbase"}},
		{Nodes: 1},
		{Users: -1},
		{Duration: time.Millisecond},
		{Faults: []string{"disk"}},
		{Fronts: []string{"traefik"}},
		{Strategies: []string{"redis+Near cache"}},
		{Strategies: []string{"memory"}}, // no Binary
	} {
		if _, err := lab.Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v): no error; want one", c)
		}
	}
}
