package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// TestOutage stops a test-owned redis-server in the middle of traffic and
// starts it again: while it is down every request fails fast (503 from the
// circuit breaker, well before the store's Timeout), no goroutine piles up, and once it
// is back every session written before the outage loads again, without a
// restart of the app.
func TestOutage(t *testing.T) {
	bin := testenv.Command(t, "redis-server")
	dir := t.TempDir()
	port := freePort(t, false)
	// Durable, so that the restarted server has the sessions: the point is
	// the app's behaviour, not Redis's persistence.
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
		"--appendfsync", "always", "--dir", dir, "--daemonize", "no"}
	start := func() *proc {
		t.Helper()
		logFile, err := os.Create(filepath.Join(dir, "redis.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{port: port, cmd: cmd, done: make(chan struct{})}
		go func() { cmd.Wait(); logFile.Close(); close(p.done) }()
		if err := waitPing(p); err != nil {
			p.kill()
			t.Fatal(err)
		}
		return p
	}
	srv := start()
	t.Cleanup(func() { srv.kill() })

	baseline := runtime.NumGoroutine()
	st, err := redisstore.New(t.Context(), redisstore.Config{
		Addrs: []string{srv.addr()}, DialTimeout: 200 * time.Millisecond, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := breaker.New(breaker.Config{Failures: 3, OpenFor: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	counted := &countedStore{Store: st}
	m, err := session.New(session.Config{Store: breaker.Wrap(counted, b)})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if v := r.URL.Query().Get("set"); v != "" {
			s.Set("v", v)
			return
		}
		v, _ := session.Value[string](s, "v")
		w.Write([]byte(v))
	}))
	serve := func(path, cookie string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	const n = 200
	cookies := make([]string, n)
	for i := range cookies {
		w := serve(fmt.Sprintf("/?set=value-%d", i), "")
		c := w.Result().Cookies()
		if w.Code != 200 || len(c) != 1 {
			t.Fatalf("session %d: status %d, cookies %v", i, w.Code, c)
		}
		cookies[i] = c[0].Name + "=" + c[0].Value
	}

	srv.kill() // abruptly: SIGKILL
	loadsBefore := counted.loads.Load()
	took := make([]time.Duration, 300)
	for i := range took {
		t0 := time.Now()
		w := serve("/", cookies[i%n])
		took[i] = time.Since(t0)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("request %d while Redis is down: status %d, Retry-After %q; want 503 with Retry-After",
				i, w.Code, w.Header().Get("Retry-After"))
		}
	}
	// Failing fast: the breaker lets few requests reach the store (3
	// failures open it, then one probe per 300 ms), and none of those
	// waits for the store's Timeout (500 ms): the dead server refuses the
	// connection. The time bounds leave room for a loaded 2-core
	// machine's scheduling delays.
	if n := counted.loads.Load() - loadsBefore; n > 30 {
		t.Errorf("%d of 300 requests reached the store while it was down; want the breaker to stop all but a few", n)
	}
	if n := counted.timeouts.Load(); n != 0 {
		t.Errorf("%d loads waited for the store's Timeout while it was down; want a fast failure", n)
	}
	slices.Sort(took)
	median, slowest := took[len(took)/2], took[len(took)-1]
	if median >= 10*time.Millisecond || slowest >= 250*time.Millisecond {
		t.Errorf("failures took %v (median), %v (slowest); want under 10ms and 250ms", median, slowest)
	}
	if b.State() != breaker.Open && b.State() != breaker.HalfOpen {
		t.Errorf("breaker %v while Redis is down; want open", b.State())
	}
	t.Logf("300 requests while down: %d reached the store; median %v, slowest %v", counted.loads.Load()-loadsBefore, median, slowest)

	srv = start()
	deadline := time.Now().Add(15 * time.Second)
	for serve("/", cookies[0]).Code != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 15s of the restart; breaker %v", b.State())
		}
		time.Sleep(20 * time.Millisecond) // real time: waiting for a real server
	}
	for i, c := range cookies {
		if w := serve("/", c); w.Code != 200 || w.Body.String() != fmt.Sprintf("value-%d", i) {
			t.Fatalf("session %d after the restart: %d %q; want value-%d", i, w.Code, w.Body.String(), i)
		}
	}

	st.Close()
	deadline = time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close; %d before New:\n%s", runtime.NumGoroutine(), baseline,
				buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countedStore counts the Loads that reach the store, and those that ran
// out of time.
type countedStore struct {
	*redisstore.Store
	loads, timeouts atomic.Int64
}

func (c *countedStore) Load(ctx context.Context, key string) (store.Record, error) {
	c.loads.Add(1)
	rec, err := c.Store.Load(ctx, key)
	if errors.Is(err, context.DeadlineExceeded) {
		c.timeouts.Add(1)
	}
	return rec, err
}
