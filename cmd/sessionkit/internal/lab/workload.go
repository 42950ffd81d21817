package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// counters are what the virtual users observed, for one strategy.
type counters struct {
	requests     atomic.Int64
	errors       atomic.Int64
	logins       atomic.Int64
	sessionsLost atomic.Int64
	updatesAcked atomic.Int64
	updatesLost  atomic.Int64
	wireBytes    atomic.Int64

	// oneAtATime, set for a migration run, has the users add one item at
	// a time, never three at once: the token strategy loses concurrent
	// adds by design (its own row shows it), and a migration's losses
	// must be the switch's alone.
	oneAtATime bool

	// idle, while set, keeps every third user (the idlers) from sending
	// requests: the evict fault's users who stepped away, whose sessions
	// nobody reads while the store is under memory pressure.
	idle atomic.Bool

	start  time.Time
	bucket time.Duration
	mu     sync.Mutex
	lat    [][]time.Duration // per time bucket
	errs   []int             // per time bucket
}

func newCounters(start time.Time, bucket time.Duration, n int) *counters {
	return &counters{start: start, bucket: bucket, lat: make([][]time.Duration, n), errs: make([]int, n)}
}

// record counts one request that started at t0 and took d.
func (c *counters) record(t0 time.Time, d time.Duration, failed bool) {
	c.requests.Add(1)
	if failed {
		c.errors.Add(1)
	}
	i := int(t0.Sub(c.start) / c.bucket)
	c.mu.Lock()
	if i >= 0 && i < len(c.lat) {
		c.lat[i] = append(c.lat[i], d)
		if failed {
			c.errs[i]++
		}
	}
	c.mu.Unlock()
}

// wireCounter counts the session state a request and its answer carry:
// the Cookie header the jar put on the request, and the Set-Cookie
// headers of the answer.
type wireCounter struct {
	next http.RoundTripper
	c    *counters
}

func (w wireCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	n := 0
	for _, v := range r.Header.Values("Cookie") {
		n += len("Cookie: ") + len(v)
	}
	resp, err := w.next.RoundTrip(r)
	if resp != nil {
		for _, v := range resp.Header.Values("Set-Cookie") {
			n += len("Set-Cookie: ") + len(v)
		}
	}
	w.c.wireBytes.Add(int64(n))
	return resp, err
}

// user is one virtual user: its own cookie jar, what it believes its cart
// holds, and its own random source (seeded, so that a run's choices
// repeat).
type user struct {
	name     string
	client   *http.Client
	base     string
	c        *counters
	rng      *rand.Rand
	loggedIn bool
	// want is the items this session's cart must hold: each add answered
	// 200 since the login, as of the last read.
	want  []string
	items int
	idler bool // pauses while counters.idle is set
}

func newUser(i int, base string, tr http.RoundTripper, c *counters, seed uint64) *user {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &user{
		name:   fmt.Sprintf("u%03d", i),
		client: &http.Client{Jar: jar, Transport: wireCounter{tr, c}, Timeout: 5 * time.Second},
		base:   base,
		c:      c,
		rng:    rand.New(rand.NewPCG(seed, uint64(i))),
		idler:  i%3 == 0,
	}
}

// cartAnswer is the JSON of the cart routes.
type cartAnswer struct {
	User  string   `json:"user"`
	Items []string `json:"items"`
}

// do sends one request and classifies the answer: ok (2xx), noSession
// (401), or failed (anything else, transport errors included). It counts
// the request.
func (u *user) do(ctx context.Context, method, path string, body any, out any) (status int, err error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := u.client.Do(req)
	if err != nil {
		if ctx.Err() == nil { // not the end of the run
			u.c.record(t0, time.Since(t0), true)
		}
		return 0, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	failed := err != nil || (resp.StatusCode >= 300 && resp.StatusCode != http.StatusUnauthorized)
	u.c.record(t0, time.Since(t0), failed)
	if failed {
		if err == nil {
			err = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
		}
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			u.c.errors.Add(1)
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// lost records that a logged-in user was answered 401.
func (u *user) lost() {
	if u.loggedIn {
		u.c.sessionsLost.Add(1)
	}
	u.loggedIn, u.want = false, nil
}

func (u *user) login(ctx context.Context) {
	st, err := u.do(ctx, http.MethodPost, "/login", map[string]string{"user": u.name}, nil)
	if err == nil && st == http.StatusOK {
		u.c.logins.Add(1)
		u.loggedIn, u.want = true, nil
		// A fresh login starts from what the cart holds (a session kept
		// from before, or none).
		u.check(ctx, false)
	}
}

// add adds n items at once, as n tabs would: concurrent requests of the
// same session.
func (u *user) add(ctx context.Context, n int) {
	type result struct {
		item string
		ok   bool
		lost bool
	}
	res := make([]result, n)
	var wg sync.WaitGroup
	for k := range n {
		u.items++
		item := fmt.Sprintf("%s-i%d", u.name, u.items)
		wg.Go(func() {
			st, err := u.do(ctx, http.MethodPost, "/cart", map[string]string{"item": item}, nil)
			res[k] = result{item: item, ok: err == nil && st == http.StatusOK, lost: err == nil && st == http.StatusUnauthorized}
		})
	}
	wg.Wait()
	for _, r := range res {
		switch {
		case r.lost:
			u.lost()
			return
		case r.ok:
			u.c.updatesAcked.Add(1)
			u.want = append(u.want, r.item)
		}
	}
}

// check reads the cart and counts the acknowledged items it lacks as lost
// updates (once: what the cart holds becomes what is expected).
func (u *user) check(ctx context.Context, count bool) {
	var cart cartAnswer
	st, err := u.do(ctx, http.MethodGet, "/cart", nil, &cart)
	switch {
	case err != nil:
		return
	case st == http.StatusUnauthorized:
		u.lost()
		return
	}
	if count {
		for _, it := range u.want {
			if !slices.Contains(cart.Items, it) {
				u.c.updatesLost.Add(1)
			}
		}
	}
	u.want = cart.Items
}

// logout ends the session. Whatever the answer, the user then counts
// itself logged out: a logout whose answer was lost (the node died after
// destroying the session) must not make the next 401 look like a lost
// session.
func (u *user) logout(ctx context.Context) {
	u.do(ctx, http.MethodPost, "/logout", nil, nil)
	u.loggedIn, u.want = false, nil
}

// run is the user's loop until ctx ends: log in, then add items (one, or
// three at once), read the cart, and now and then log out.
func (u *user) run(ctx context.Context) {
	for ctx.Err() == nil {
		if u.idler && u.c.idle.Load() {
			pause(ctx, 10*time.Millisecond)
			continue
		}
		if !u.loggedIn {
			u.login(ctx)
			if !u.loggedIn {
				pause(ctx, 20*time.Millisecond)
			}
			continue
		}
		switch r := u.rng.IntN(100); {
		case r < 40:
			u.add(ctx, 1)
		case r < 55 && u.c.oneAtATime:
			u.add(ctx, 1)
		case r < 55:
			u.add(ctx, 3)
			if u.loggedIn {
				u.check(ctx, true)
			}
		case r < 97:
			u.check(ctx, true)
		default:
			u.logout(ctx)
		}
		pause(ctx, time.Duration(u.rng.IntN(4))*time.Millisecond)
	}
}

func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
