package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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

	// unshared is set for a strategy whose sessions live on one node
	// only (memory): a logout answered by another node than the one that
	// made the session found it gone.
	unshared bool

	// nodes, if set, returns the nodes the users may reach directly,
	// past the front: for the stale-read probes and the logout-lag
	// polls. Nil: no direct probe (an in-process migration run).
	nodes func() []nodeURL
	// lagSlots bounds the logouts whose lag is measured at once (each
	// polls every node); a logout that finds none free is not measured.
	lagSlots chan struct{}
	lagWG    sync.WaitGroup

	staleProbes atomic.Int64 // direct reads of a cart at another node
	staleReads  atomic.Int64 // ... that lacked an acknowledged item

	// staleBound, if not 0, is how long a read may lag behind an
	// acknowledged write on a node with a near cache (its maximum age and
	// a margin): a check that lacks an item reads again until then, and
	// counts an item found meanwhile as a stale read through the front
	// (frontStale), not as an update lost.
	staleBound time.Duration
	frontStale atomic.Int64

	start  time.Time
	bucket time.Duration
	mu     sync.Mutex
	lat    [][]time.Duration // per time bucket
	errs   []int             // per time bucket
	oks    []int             // per time bucket: answered 2xx
	// firstOK are the faults whose first successful request after them
	// is still to come, by the index of their event.
	firstOK []*recovery
	lags    []time.Duration // logout lags measured
	lagLate int             // logouts not honoured by every node within maxLogoutLag
}

// recovery is what followed one fault: when the first request that
// started after it succeeded.
type recovery struct {
	at      time.Time
	firstOK time.Time // zero: none yet
}

func newCounters(start time.Time, bucket time.Duration, n int) *counters {
	return &counters{start: start, bucket: bucket, lat: make([][]time.Duration, n), errs: make([]int, n),
		oks: make([]int, n), lagSlots: make(chan struct{}, maxLagPolls)}
}

// record counts one request that started at t0 and took d, and whether
// it failed or was answered 2xx.
func (c *counters) record(t0 time.Time, d time.Duration, failed, ok bool) {
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
		if ok {
			c.oks[i]++
		}
	}
	if ok {
		for _, r := range c.firstOK {
			if r.firstOK.IsZero() && !t0.Before(r.at) {
				r.firstOK = t0.Add(d)
			}
		}
	}
	c.mu.Unlock()
}

// watch starts watching for the first success after a fault at t.
func (c *counters) watch(t time.Time) {
	c.mu.Lock()
	c.firstOK = append(c.firstOK, &recovery{at: t})
	c.mu.Unlock()
}

// nodeURL is a node's name and base URL.
type nodeURL struct{ name, url string }

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
	// lostOne is set once the user has lost a session.
	lostOne bool
	// mu guards home and rehomed, which concurrent adds read and write.
	mu sync.Mutex
	// home is the node that made the session whose cookie the jar holds,
	// or "": with counters.unshared, an answer from another node means
	// the session is gone (the front re-homed the user), whatever the
	// request (a logout, or the login after a logout that failed).
	home string
	// rehomed is set when that was counted as a session lost, so that
	// the 401 that follows is not counted again.
	rehomed bool
	// direct sends the requests that bypass the front (no cookie jar:
	// they carry the session cookie by hand, and what they are answered
	// does not change it).
	direct *http.Client
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
		direct: &http.Client{Transport: tr, Timeout: 5 * time.Second},
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
	status, _, err = u.doAt(ctx, method, path, body, out)
	return status, err
}

// doAt is do, and also returns the name of the node that answered
// (X-Node).
func (u *user) doAt(ctx context.Context, method, path string, body any, out any) (status int, node string, err error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, rd)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := u.client.Do(req)
	if err != nil {
		if ctx.Err() == nil { // not the end of the run
			u.c.record(t0, time.Since(t0), true, false)
		}
		return 0, "", err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	node = resp.Header.Get("X-Node")
	u.noticeNode(node)
	failed := err != nil || (resp.StatusCode >= 300 && resp.StatusCode != http.StatusUnauthorized)
	u.c.record(t0, time.Since(t0), failed, !failed && resp.StatusCode < 300)
	if failed {
		if err == nil {
			err = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
		}
		return resp.StatusCode, node, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			u.c.errors.Add(1)
			return resp.StatusCode, node, err
		}
	}
	return resp.StatusCode, node, nil
}

// sessionCookie returns the session cookie the user's jar holds for the
// front, or "".
func (u *user) sessionCookie() string {
	req, err := http.NewRequest(http.MethodGet, u.base, nil)
	if err != nil {
		return ""
	}
	for _, c := range u.client.Jar.Cookies(req.URL) {
		if c.Name == "session" || c.Name == "__Host-session" {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

// directGet sends GET path to the node at base with the cookie, past the
// front, and returns the status and body. It is not counted as one of
// the users' requests.
func (u *user) directGet(ctx context.Context, base, path, cookie string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Cookie", cookie)
	resp, err := u.direct.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// staleProbe reads the cart directly at a node other than the one that
// acknowledged the last write (acked), and counts a stale read if it
// lacks an item acknowledged before the read started.
func (u *user) staleProbe(ctx context.Context, acked string) {
	if u.c.nodes == nil || u.rng.IntN(4) != 0 {
		return
	}
	cookie := u.sessionCookie()
	var others []nodeURL
	for _, n := range u.c.nodes() {
		if n.name != acked {
			others = append(others, n)
		}
	}
	if cookie == "" || len(others) == 0 {
		return
	}
	n := others[u.rng.IntN(len(others))]
	want := slices.Clone(u.want)
	st, b, err := u.directGet(ctx, n.url, "/cart", cookie)
	if err != nil || st != http.StatusOK {
		return // a node down or restarting: not a read
	}
	var cart cartAnswer
	if json.Unmarshal(b, &cart) != nil {
		return
	}
	u.c.staleProbes.Add(1)
	for _, it := range want {
		if !slices.Contains(cart.Items, it) {
			u.c.staleReads.Add(1)
			return
		}
	}
}

// Logout lag is measured for at most maxLagPolls logouts at once, each
// polling every node every lagPoll (lagPollLate after lagPollFast), for up
// to maxLogoutLag.
const (
	maxLagPolls  = 8
	lagPoll      = 2 * time.Millisecond
	lagPollLate  = 20 * time.Millisecond
	lagPollFast  = 100 * time.Millisecond
	maxLogoutLag = 5 * time.Second
)

// isTimeout reports whether err is a request's time-out (a node too busy
// to answer, not a dead one).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// trackLogout measures how long after ack a logout of the session cookie
// is honoured by every node: each live node is asked GET /whoami with the
// old cookie until it answers 401; the lag is the last node's.
func (u *user) trackLogout(ctx context.Context, cookie string, ack time.Time) {
	if u.c.nodes == nil || cookie == "" {
		return
	}
	select {
	case u.c.lagSlots <- struct{}{}:
	default:
		return // enough logouts measured at once
	}
	nodes := u.c.nodes()
	u.c.lagWG.Go(func() {
		defer func() { <-u.c.lagSlots }()
		// The run's end does not cut a measurement short.
		ctx := context.WithoutCancel(ctx)
		// Every node is polled at once, each until it answers 401 (or
		// is down: it serves nobody); the lag is the last one's.
		lags := make([]time.Duration, len(nodes))
		late := make([]bool, len(nodes))    // still served the old session after maxLogoutLag
		unknown := make([]bool, len(nodes)) // never answered 200 or 401 before then
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() {
				served := false // the last answer, 200 or other
				for {
					st, _, err := u.directGet(ctx, n.url, "/whoami", cookie)
					since := time.Since(ack)
					switch {
					case err == nil && st == http.StatusUnauthorized:
						lags[i] = since
						return
					case err != nil && !isTimeout(err):
						return // down: it serves nobody
					}
					served = err == nil && st == http.StatusOK
					switch {
					case since > maxLogoutLag:
						late[i], unknown[i] = served, !served
						return
					case since > lagPollFast:
						time.Sleep(lagPollLate)
					default:
						time.Sleep(lagPoll)
					}
				}
			})
		}
		wg.Wait()
		switch {
		case slices.Contains(late, true):
			u.c.mu.Lock()
			u.c.lagLate++
			u.c.mu.Unlock()
			return
		case slices.Contains(unknown, true):
			return // a node in trouble (5xx, time-outs) for 5 s: not a measure
		}
		last := slices.Max(lags)
		u.c.mu.Lock()
		u.c.lags = append(u.c.lags, last)
		u.c.mu.Unlock()
	})
}

// noticeNode counts a session lost when, with a strategy whose sessions
// live on one node, a request carrying the session's cookie was answered
// by another node than the one that made it.
func (u *user) noticeNode(node string) {
	if !u.c.unshared || node == "" {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.home != "" && node != u.home {
		u.c.sessionsLost.Add(1)
		u.lostOne, u.home, u.rehomed = true, "", true
	}
}

// lost records that a logged-in user was answered 401.
func (u *user) lost() {
	u.mu.Lock()
	counted := u.rehomed
	u.home, u.rehomed = "", false
	u.mu.Unlock()
	if u.loggedIn && !counted {
		u.c.sessionsLost.Add(1)
		u.lostOne = true
	}
	u.loggedIn, u.want = false, nil
}

func (u *user) login(ctx context.Context) {
	st, node, err := u.doAt(ctx, http.MethodPost, "/login", map[string]string{"user": u.name}, nil)
	if err == nil && st == http.StatusOK {
		u.c.logins.Add(1)
		u.loggedIn, u.want = true, nil
		u.mu.Lock()
		u.home, u.rehomed = node, false
		u.mu.Unlock()
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
		node string
	}
	res := make([]result, n)
	var wg sync.WaitGroup
	for k := range n {
		u.items++
		item := fmt.Sprintf("%s-i%d", u.name, u.items)
		wg.Go(func() {
			st, node, err := u.doAt(ctx, http.MethodPost, "/cart", map[string]string{"item": item}, nil)
			res[k] = result{item: item, ok: err == nil && st == http.StatusOK, lost: err == nil && st == http.StatusUnauthorized, node: node}
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
	if n == 1 && res[0].ok {
		// One add at a time: the cart holds exactly what is wanted (a
		// token's too), so a read elsewhere that lacks it is stale.
		u.staleProbe(ctx, res[0].node)
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
		if u.c.staleBound > 0 && u.lacks(cart.Items) {
			// A near cache may serve a copy older than an acknowledged
			// write for up to its maximum age: read again until then.
			deadline := time.Now().Add(u.c.staleBound)
			for u.lacks(cart.Items) && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
				var again cartAnswer
				if st, err := u.do(ctx, http.MethodGet, "/cart", nil, &again); err != nil || st != http.StatusOK {
					break
				}
				if !u.lacks(again.Items) {
					u.c.frontStale.Add(1)
				}
				cart = again
			}
		}
		for _, it := range u.want {
			if !slices.Contains(cart.Items, it) {
				u.c.updatesLost.Add(1)
			}
		}
	}
	u.want = cart.Items
}

// lacks reports whether items lacks one of the items the user expects.
func (u *user) lacks(items []string) bool {
	for _, it := range u.want {
		if !slices.Contains(items, it) {
			return true
		}
	}
	return false
}

// logout ends the session. Whatever the answer, the user then counts
// itself logged out: a logout whose answer was lost (the node died after
// destroying the session) must not make the next 401 look like a lost
// session. A logout of a session that lives on one node only, answered by
// another node, found it gone: a session lost (noticeNode), as a 401
// would have shown.
func (u *user) logout(ctx context.Context) {
	cookie := u.sessionCookie()
	st, err := u.do(ctx, http.MethodPost, "/logout", nil, nil)
	if err == nil && st == http.StatusOK {
		u.mu.Lock()
		u.home, u.rehomed = "", false // the answer deleted the cookie
		u.mu.Unlock()
		u.trackLogout(ctx, cookie, time.Now())
	}
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
