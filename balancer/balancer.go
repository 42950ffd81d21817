package balancer

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Balancer is the sticky-session reverse proxy. Create it with New; it is
// safe for concurrent use, and Close stops its health checks.
type Balancer struct {
	cfg Config
	// plainCookie is SessionCookie without its "__Host-" prefix, read when
	// the prefixed cookie is absent; "" when SessionCookie has none.
	plainCookie string
	proxy       *httputil.ReverseProxy
	signer      signer
	obs         Observer // nil: no events

	set     atomic.Pointer[nodeSet]
	mu      sync.Mutex          // serializes node-set changes
	removed map[string]struct{} // names removed at runtime; guarded by mu
	lost    lostSet
	fast    *fastProxy // set by NewFastServer
	tunnels tunnelSet

	closed    atomic.Bool
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New returns a Balancer for cfg, with its health checks running (unless
// cfg.Health.Interval is negative). It returns an error wrapping ErrConfig
// for an invalid Config; it never panics.
func New(cfg Config) (*Balancer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	key := cfg.Affinity.Key
	if len(key) == 0 {
		key = make([]byte, MinAffinityKeyLen)
		crand.Read(key) // never fails
	}
	b := &Balancer{
		cfg:         cfg,
		plainCookie: strings.TrimPrefix(cfg.SessionCookie, "__Host-"),
		signer:      signer{key: key},
		obs:         cfg.Observer,
		removed:     map[string]struct{}{},
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	list := make([]*node, 0, len(cfg.Backends))
	for _, be := range cfg.Backends {
		n, err := b.newNode(be)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(list, func(o *node) bool { return o.name == n.name }) {
			return nil, fmt.Errorf("%w: two backends are named %q", ErrConfig, n.name)
		}
		list = append(list, n)
	}
	if b.obs != nil {
		for _, n := range list {
			b.obs.NodeAdded(n.name)
		}
	}
	b.set.Store(newNodeSet(list))
	b.proxy = &httputil.ReverseProxy{
		Rewrite:        b.rewrite,
		Transport:      &retryTransport{b: b, base: cfg.Transport},
		ModifyResponse: b.modifyResponse,
		ErrorHandler:   b.proxyError,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	if cfg.Health.Interval > 0 {
		go b.healthLoop()
	} else {
		close(b.done)
	}
	return b, nil
}

func (b *Balancer) newNode(be Backend) (*node, error) {
	u, err := be.check()
	if err != nil {
		return nil, err
	}
	n := &node{name: be.Name, url: u, id: b.signer.nodeID(be.Name), hash: hashKey(be.Name)}
	n.up.Store(true) // optimistic until its checks say otherwise
	return n, nil
}

// NewTransport returns the transport a Balancer uses by default, tuned for
// proxying to a few nodes at high concurrency: keep-alive connections, up
// to 512 idle ones per node (so that 64 and more concurrent clients reuse
// connections instead of opening new ones) closed after 90s idle (New sets
// Config.BackendIdleTimeout instead), 5s to connect, 60s to the response
// header, no HTTP proxy from the environment.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          2048,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		DisableCompression:    true,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
}

// bufferPool lends the proxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// reqState is one request's routing, carried in its context from
// ServeHTTP to the transport and the response hooks.
type reqState struct {
	node      *node
	key       uint64 // rendezvous key
	hasKey    bool   // key identifies a session (not a random key for a new user)
	setCookie string // affinity cookie to send, if any
	affKey    string // affinity cookie key, when the cookie is in use
	status    int    // for Observer.RequestDone: the HTTP status answered; 0: none
	body      *trackedBody
	in        *url.URL // the inbound URL, to rewrite for a retry
	path      string   // the fast server's inbound path, when a node has a path prefix
	unreached bool     // every attempt failed to connect: no node received the request
}

type stateKey struct{}

// ServeHTTP proxies r to its node. It answers 503 when no node can take
// the request, or when no connection to a node could be made for it (not
// on the first attempt, nor on the retry): no node received it. It answers
// 502 when a node received the request and failed (after the retry, if
// any).
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := b.start()
	st := &reqState{}
	if !b.route(r, st) {
		b.noBackend(w)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		body := r.Body
		if b.cfg.MaxBodyBytes > 0 {
			body = http.MaxBytesReader(w, body, b.cfg.MaxBodyBytes)
		}
		st.body = &trackedBody{rc: body}
		r.Body = st.body
	}
	st.node.inflight.Add(1)
	if isTunnel(r) {
		b.tunnels.add()
		defer b.tunnels.done(nil)
	}
	b.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	b.finish(st, start) // the retry may have moved the request to another node
}

// route chooses r's node and records it in st; false if there is none.
func (b *Balancer) route(r *http.Request, st *reqState) bool {
	return b.routeBy(func(name string) (string, bool) { return cookieValue(r.Header, name) }, st)
}

// routeBy chooses the node of a request whose cookies cookie returns, and
// records it in st; false if there is none.
func (b *Balancer) routeBy(cookie func(name string) (string, bool), st *reqState) bool {
	set := b.set.Load()
	now := b.cfg.Now().UnixNano()

	v, ok := cookie(b.cfg.SessionCookie)
	if !ok && b.plainCookie != b.cfg.SessionCookie {
		v, ok = cookie(b.plainCookie)
	}
	if ok {
		if random, route, ok := parseRouted(v); ok {
			st.key, st.hasKey = hashKey(random), true
			return b.sticky(set, set.routed(route), route, now, st)
		}
	}
	if b.cfg.Affinity.Enabled {
		if v, ok := cookie(b.cfg.Affinity.Name); ok {
			if key, id, ok := b.signer.verify(v); ok {
				st.key, st.hasKey, st.affKey = hashKey(key), true, key
				return b.sticky(set, set.byID[id], "", now, st)
			}
		}
		st.affKey = newKey()
		st.key, st.hasKey = hashKey(st.affKey), true
		if b.obs != nil {
			b.obs.Affinity(AffinityMiss, "")
		}
		return b.place(set, now, st, nil)
	}
	if b.obs != nil {
		b.obs.Affinity(AffinityMiss, "")
	}
	st.key = rand.Uint64()
	return b.place(set, now, st, nil)
}

// sticky routes a request that names node n (nil if unknown; name is its
// route tag, if it came from one).
func (b *Balancer) sticky(set *nodeSet, n *node, name string, now int64, st *reqState) bool {
	if n != nil && n.sticky(now) {
		if b.obs != nil {
			b.obs.Affinity(AffinityHit, "")
		}
		st.node = n
		n.sessions.see(st.key, now, b.cfg.SessionWindow)
		return true
	}
	if b.obs != nil {
		var cause string
		switch {
		case n == nil && b.wasRemoved(name):
			cause = CauseNodeRemoved
		case n == nil:
			cause = CauseUnknownNode
		case n.state(now) == StateDrained:
			cause = CauseDrainDeadline
		default:
			cause = CauseNodeDown
		}
		b.rehomed(st.key, cause)
	}
	return b.place(set, now, st, n)
}

// rehomed reports one re-homed request and, for in-memory sessions, the
// session lost with it (once per session, approximately). b.obs is not
// nil.
func (b *Balancer) rehomed(key uint64, cause string) {
	b.obs.Affinity(AffinityRehome, cause)
	if !b.cfg.SharedSessions && b.lost.first(key) {
		b.obs.SessionLost(cause)
	}
}

// isSessionCookie reports whether a Set-Cookie line sets the session
// cookie (either name).
func (b *Balancer) isSessionCookie(line string) bool {
	name, _, ok := strings.Cut(line, "=")
	return ok && (name == b.cfg.SessionCookie || name == b.plainCookie)
}

func (b *Balancer) wasRemoved(name string) bool {
	if name == "" {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.removed[name]
	return ok
}

// place puts a new or re-homed request on the node of highest rendezvous
// score for st.key among those taking new sessions, passing over exclude
// and, with a LoadFactor, nodes above their bound.
func (b *Balancer) place(set *nodeSet, now int64, st *reqState, exclude *node) bool {
	n := b.pick(set, now, st.key, exclude)
	if n == nil {
		return false
	}
	st.node = n
	if st.hasKey {
		n.sessions.see(st.key, now, b.cfg.SessionWindow)
	}
	if st.affKey != "" {
		st.setCookie = b.affinityCookie(st.affKey, n)
	}
	return true
}

func (b *Balancer) pick(set *nodeSet, now int64, key uint64, exclude *node) *node {
	if b.cfg.LoadFactor == 0 {
		var best *node
		var bestScore uint64
		for _, n := range set.list {
			if n == exclude || !n.fresh(now) {
				continue
			}
			if s := score(key, n.hash); best == nil || s > bestScore {
				best, bestScore = n, s
			}
		}
		return best
	}
	// Bounded loads: the first node in score order whose requests in flight
	// stay within LoadFactor times the average, counting this one.
	type cand struct {
		n *node
		s uint64
	}
	var buf [16]cand
	cands := buf[:0]
	var total int64
	for _, n := range set.list {
		if n == exclude || !n.fresh(now) {
			continue
		}
		cands = append(cands, cand{n, score(key, n.hash)})
		total += n.inflight.Load()
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, c cand) int {
		if a.s > c.s {
			return -1
		}
		return 1
	})
	bound := b.cfg.LoadFactor * float64(total+1) / float64(len(cands))
	for _, c := range cands {
		if float64(c.n.inflight.Load()+1) <= bound {
			return c.n
		}
	}
	return cands[0].n
}

func (b *Balancer) affinityCookie(key string, n *node) string {
	a := b.cfg.Affinity
	c := &http.Cookie{Name: a.Name, Value: b.signer.sign(key, n.id), Path: a.Path,
		HttpOnly: true, Secure: !a.Insecure, SameSite: a.SameSite}
	return c.String()
}

func (b *Balancer) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*reqState)
	if b.cfg.TrustForwarded {
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
		pr.Out.Header["X-Forwarded-Host"] = pr.In.Header["X-Forwarded-Host"]
		pr.Out.Header["X-Forwarded-Proto"] = pr.In.Header["X-Forwarded-Proto"]
	}
	pr.SetXForwarded()
	if b.cfg.TrustForwarded {
		if v := pr.In.Header.Get("X-Forwarded-Host"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
		if v := pr.In.Header.Get("X-Forwarded-Proto"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
	}
	st.in = pr.In.URL
	pr.SetURL(st.node.url)
}

func (b *Balancer) modifyResponse(resp *http.Response) error {
	st := resp.Request.Context().Value(stateKey{}).(*reqState)
	st.status = statusOf(resp.StatusCode)
	for _, line := range resp.Header["Set-Cookie"] {
		if b.isSessionCookie(line) {
			b.sawSessionCookie(st.node, line)
		}
	}
	if st.setCookie != "" {
		resp.Header.Add("Set-Cookie", st.setCookie)
	}
	return nil
}

func (b *Balancer) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(stateKey{}).(*reqState)
	st.status = 0
	if r.Context().Err() != nil { // the client went away
		return
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		st.status = http.StatusRequestEntityTooLarge
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if st.unreached {
		b.cfg.Logger.Warn("balancer: no node could be reached", "node", st.node.name, "method", r.Method, "err", err)
		b.noBackend(w)
		return
	}
	b.cfg.Logger.Warn("balancer: proxy error", "node", st.node.name, "method", r.Method, "err", err)
	http.Error(w, "bad gateway", http.StatusBadGateway)
}

// noBackend answers 503 with Retry-After: no node can take the request,
// or none could be reached, so that none received it and the client may
// send it again.
func (b *Balancer) noBackend(w http.ResponseWriter) {
	if b.obs != nil {
		b.obs.NoNode()
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, "no backend available", http.StatusServiceUnavailable)
}

// trackedBody is a request body that remembers whether a byte of it was
// read, so that a request whose body was never sent can be retried. Its
// Close does not close the body: the transport closes it after a failed
// attempt, and the retry still needs it; the server closes the real body
// when the request ends.
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 {
		t.read.Store(true)
	}
	return n, err
}

func (t *trackedBody) Close() error { return nil }

// retryTransport ejects a node whose connection failed and retries the
// request once on another node when that is safe. It notes in the
// request's reqState whether every attempt failed to connect.
type retryTransport struct {
	b    *Balancer
	base http.RoundTripper
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil || req.Context().Err() != nil {
		return resp, err
	}
	st, ok := req.Context().Value(stateKey{}).(*reqState)
	if !ok {
		return resp, err
	}
	st.unreached = dialFailed(err)
	if !t.b.failover(st, err, retryable(req, st, err)) {
		return nil, err
	}
	retry := req.Clone(req.Context())
	u := *st.in
	retry.URL = &u
	(&httputil.ProxyRequest{Out: retry}).SetURL(st.node.url)
	if st.body != nil {
		retry.Body = st.body
	}
	resp, err = t.base.RoundTrip(retry)
	if err != nil && req.Context().Err() == nil {
		t.b.connFailed(st.node, err) // as the fast engine does: the retry's node failed too
	}
	st.unreached = st.unreached && err != nil && dialFailed(err)
	return resp, err
}

// failover ejects st's node after err if it is down (see connFailed) and,
// when retry allows, moves st to the next node for its key: true if the
// request should be sent again, to st.node.
func (b *Balancer) failover(st *reqState, err error, retry bool) bool {
	failed := st.node
	b.connFailed(failed, err)
	if !retry {
		return false
	}
	alt := b.pick(b.set.Load(), b.cfg.Now().UnixNano(), st.key, failed)
	if alt == nil {
		return false
	}
	if b.obs != nil {
		if st.hasKey {
			b.rehomed(st.key, CauseNodeDown)
		}
		b.obs.Retried()
	}
	failed.inflight.Add(-1)
	alt.inflight.Add(1)
	st.node = alt
	if st.affKey != "" {
		st.setCookie = b.affinityCookie(st.affKey, alt)
	}
	return true
}

// retryable reports whether a failed request may be sent again: its
// connection was never made and no byte of its body was read, or it is a
// bodyless GET, HEAD or OPTIONS.
func retryable(req *http.Request, st *reqState, err error) bool {
	if st.body != nil && st.body.read.Load() {
		return false
	}
	if dialFailed(err) {
		return true
	}
	return st.body == nil && safeMethod(req.Method)
}

// dialFailed reports whether err is a failure to connect, before any byte
// of the request was sent.
func dialFailed(err error) bool {
	oe, ok := errors.AsType[*net.OpError](err)
	return ok && oe.Op == "dial"
}

// safeMethod reports whether a bodyless request of this method may be sent
// twice: GET, HEAD or OPTIONS.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// probeTimeout bounds the connection attempt by which connFailed tells a
// node that is down from a connection that ended.
const probeTimeout = time.Second

// connFailed ejects n after err, a failed exchange with it, if n is down:
// err is a failed dial or a timeout, or a new connection to n fails too.
// A node that still accepts connections has only closed or reset one, as
// when it times out a keep-alive connection just as the balancer reuses it
// (a race every proxy meets: nginx does not count it against the node
// either), and stays in the rotation, so that its users keep their node.
// The active health check takes down a node that drops every request.
func (b *Balancer) connFailed(n *node, err error) {
	if dialFailed(err) || isTimeout(err) {
		b.eject(n, err)
		return
	}
	c, derr := net.DialTimeout("tcp", hostPort(n), probeTimeout)
	if derr != nil {
		b.eject(n, fmt.Errorf("%w; then %w", err, derr))
		return
	}
	c.Close()
	if b.obs != nil {
		b.obs.ConnError(n.name)
	}
}

// isTimeout reports whether err is a timeout.
func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// eject takes n out of the rotation for EjectFor after a connection error.
func (b *Balancer) eject(n *node, err error) {
	until := b.cfg.Now().Add(b.cfg.EjectFor).UnixNano()
	if old := n.ejectedUntil.Load(); old < until {
		n.ejectedUntil.Store(until)
	}
	if b.obs != nil {
		b.obs.Ejected(n.name)
	}
	b.cfg.Logger.Warn("balancer: node ejected after a connection error", "node", n.name, "for", b.cfg.EjectFor, "err", err)
}

// Close stops the health checks. It does not close connections in flight
// (shut down the http.Server first). Later calls do nothing.
func (b *Balancer) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		close(b.stop)
	})
	<-b.done
	return nil
}
