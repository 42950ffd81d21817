package balancer

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults of FastConfig.
const (
	DefaultFastReadTimeout     = 60 * time.Second
	DefaultFastIdleTimeout     = 120 * time.Second
	DefaultFastBackendTimeout  = 60 * time.Second
	DefaultFastMaxHeaderBytes  = 16 << 10
	DefaultFastMaxResponseBody = 64 << 20
)

// FastConfig configures the server of NewFastServer. Zero fields take
// their defaults.
type FastConfig struct {
	// ReadTimeout bounds the time to read one request, headers and body,
	// from its first byte. Default DefaultFastReadTimeout.
	ReadTimeout time.Duration

	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Default DefaultFastIdleTimeout.
	IdleTimeout time.Duration

	// BackendTimeout bounds writing a request to a node and reading its
	// whole response. Default DefaultFastBackendTimeout.
	BackendTimeout time.Duration

	// MaxHeaderBytes bounds the request line and headers of a request,
	// and the status line and headers of a node's response (a larger one
	// is refused with 431, or answered with 502). It is also the size of
	// each connection's read buffer. Default DefaultFastMaxHeaderBytes
	// (16 KiB, as HAProxy's default buffer).
	MaxHeaderBytes int

	// MaxResponseBodyBytes bounds a node's response body, which the fast
	// server reads whole before sending it on (as nginx's proxy_buffering
	// does); a larger one is answered with 502. Default
	// DefaultFastMaxResponseBody.
	MaxResponseBodyBytes int
}

func (c FastConfig) withDefaults() FastConfig {
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultFastReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultFastIdleTimeout
	}
	if c.BackendTimeout <= 0 {
		c.BackendTimeout = DefaultFastBackendTimeout
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultFastMaxHeaderBytes
	}
	if c.MaxResponseBodyBytes <= 0 {
		c.MaxResponseBodyBytes = DefaultFastMaxResponseBody
	}
	return c
}

// ErrFastUnlimitedBody is returned by NewFastServer for a Balancer with no
// request body limit: the fast server reads each body whole before
// proxying it, so it needs one.
var ErrFastUnlimitedBody = errors.New("balancer: the fast server needs a request body limit (Config.MaxBodyBytes > 0)")

// fastProxy is the state of the fast server: its settings and one
// github.com/valyala/fasthttp HostClient per node, made on first use.
type fastProxy struct {
	cfg     FastConfig
	idle    time.Duration // Config.BackendIdleTimeout
	clients sync.Map      // *node -> *fasthttp.HostClient
}

// NewFastServer returns a server that proxies exactly as b.ServeHTTP does
// (the same routing, affinity, health, retries, draining and metrics),
// built on github.com/valyala/fasthttp instead of net/http: on a 2-core
// machine it spends about half the CPU per request of net/http's server
// and httputil.ReverseProxy (see bench/balancer). Serve it with its Serve
// method, on FastListener(ln) for speed, and stop it with
// ShutdownWithContext.
//
// Differences from ServeHTTP: request bodies (up to Config.MaxBodyBytes)
// and response bodies (up to cfg.MaxResponseBodyBytes) are read whole
// before they are sent on; WebSocket and other upgrades, and requests that
// accept text/event-stream, are tunneled instead: the request goes to the
// node on a connection of its own and the bytes flow unbuffered until
// either side closes (both ways only after the node's 101 Switching
// Protocols; a refused upgrade is relayed with Connection: close).
// It is safe to call once per Balancer; the Balancer keeps one set of
// node connections for it.
func (b *Balancer) NewFastServer(cfg FastConfig) (*fasthttp.Server, error) {
	if b.cfg.MaxBodyBytes <= 0 {
		return nil, ErrFastUnlimitedBody
	}
	fp := &fastProxy{cfg: cfg.withDefaults(), idle: b.cfg.BackendIdleTimeout}
	b.fast = fp
	logger := fastLogger{b.cfg.Logger}
	return &fasthttp.Server{
		Handler:                      b.serveFast,
		ErrorHandler:                 fastErrorHandler,
		ReadTimeout:                  fp.cfg.ReadTimeout,
		IdleTimeout:                  fp.cfg.IdleTimeout,
		ReadBufferSize:               fp.cfg.MaxHeaderBytes,
		WriteBufferSize:              fastWriteBufferSize,
		MaxRequestBodySize:           int(b.cfg.MaxBodyBytes),
		NoDefaultServerHeader:        true,
		LazyRequestTime:              true, // the handler does not read ctx.Time
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       logger,
	}, nil
}

// FastListener returns ln for the server of NewFastServer to serve on: on
// Linux, the TCP connections it accepts read and write with system calls
// of their own, which do not involve the Go scheduler, as the fast
// server's connections to the nodes do (see docs/balancer.md,
// "Performance"): a loopback write often takes long enough that the
// scheduler would hand the processor to another thread meanwhile, and
// taking it back costs more than the call. The server works the same on
// ln itself; elsewhere, and for connections other than TCP (TLS, say),
// FastListener changes nothing.
func FastListener(ln net.Listener) net.Listener { return fastListener{ln} }

type fastListener struct{ net.Listener }

func (l fastListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newSysConn(c), nil
}

// fastErrorHandler answers a request the server could not read.
func fastErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body too large", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, new(*fasthttp.ErrSmallBuffer)):
		ctx.Error("request header too large", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, new(*fasthttp.ErrNothingRead)) || errors.Is(err, io.EOF):
		// The client went away: nothing to answer.
	default:
		ctx.Error("bad request", fasthttp.StatusBadRequest)
	}
}

// fastLogger sends fasthttp's log lines to the Balancer's logger.
type fastLogger struct{ l *slog.Logger }

func (f fastLogger) Printf(format string, args ...any) {
	f.l.Warn("balancer: " + fmt.Sprintf(format, args...))
}

// fastWriteBufferSize is the size of the fast engine's write buffers.
const fastWriteBufferSize = 16 << 10

// fastMaxConns bounds the fast engine's connections to one node. A request
// that finds them all busy is not sent: it is answered 503 with
// Retry-After, as a node that cannot take it (a variable for the tests).
var fastMaxConns = 4096

// busy reports whether err is the fast engine's "every connection to the
// node is in use": the node is loaded, not down, and nothing was sent.
func busy(err error) bool { return errors.Is(err, fasthttp.ErrNoFreeConns) }

// client returns n's HostClient.
func (fp *fastProxy) client(n *node) *fasthttp.HostClient {
	if c, ok := fp.clients.Load(n); ok {
		return c.(*fasthttp.HostClient)
	}
	c, _ := fp.clients.LoadOrStore(n, &fasthttp.HostClient{
		Addr:                          hostPort(n),
		IsTLS:                         n.url.Scheme == "https",
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		MaxConns:                      fastMaxConns,
		// The idle connection used last is reused first, so that the
		// requests keep to as few connections as the load needs (warm in
		// the caches of both ends) and the others time out
		// (MaxIdleConnDuration); FIFO, fasthttp's default, kept every
		// connection of the busiest moment in use.
		ConnPoolStrategy:          fasthttp.LIFO,
		MaxIdleConnDuration:       fp.idle, // under the nodes' keep-alive timeouts: Config.BackendIdleTimeout
		MaxIdemponentCallAttempts: 2,       // once more on a fresh connection; then the balancer's retry
		// No ReadTimeout and WriteTimeout: the connections set one
		// deadline for each request and its response (dialLive).
		ReadBufferSize:      fp.cfg.MaxHeaderBytes,
		WriteBufferSize:     fastWriteBufferSize,
		MaxResponseBodySize: fp.cfg.MaxResponseBodyBytes,
		Dial:                func(addr string) (net.Conn, error) { return dialLive(n, addr, fp.cfg.BackendTimeout) },
	})
	return c.(*fasthttp.HostClient)
}

// do sends req to n and reads its response into resp. A pooled connection
// that the node had closed is found before anything is written on it
// (errNodeClosed; see liveConn): the node's other idle connections are
// dropped, as they are likely closed too (the node died or restarted), and
// the request is sent again on a new connection, whatever its method. If
// the node is gone, that connection is refused, and the caller's failover
// moves the request to another node.
func (fp *fastProxy) do(n *node, req *fasthttp.Request, resp *fasthttp.Response) error {
	c := fp.client(n)
	err := c.Do(req, resp)
	for i := 0; i < 2 && errors.Is(err, errNodeClosed); i++ {
		c.CloseIdleConnections()
		err = c.Do(req, resp)
	}
	return err
}

// forget drops the connections of a removed node.
func (fp *fastProxy) forget(n *node) {
	if c, ok := fp.clients.LoadAndDelete(n); ok {
		c.(*fasthttp.HostClient).CloseIdleConnections()
	}
}

const dialTimeout = 5 * time.Second

// hostPort is n's address with its port.
func hostPort(n *node) string {
	if n.url.Port() != "" {
		return n.url.Host
	}
	if n.url.Scheme == "https" {
		return net.JoinHostPort(n.url.Hostname(), "443")
	}
	return net.JoinHostPort(n.url.Hostname(), "80")
}

// fastCookie returns the value of the first cookie named name, without
// its quotes, as cookieValue does.
func fastCookie(h *fasthttp.RequestHeader, name string) (string, bool) {
	v := h.Cookie(name)
	if v == nil {
		return "", false
	}
	return unquote(string(v)), true
}

// serveFast is the fast server's handler: ServeHTTP's twin.
func (b *Balancer) serveFast(ctx *fasthttp.RequestCtx) {
	start := b.start()
	req := &ctx.Request
	st := &reqState{}
	if !b.routeBy(func(name string) (string, bool) { return fastCookie(&req.Header, name) }, st) {
		b.noBackendFast(ctx)
		return
	}
	st.node.inflight.Add(1)
	tunnel := tunneled(req)
	b.rewriteFast(ctx, st, tunnel && req.Header.ConnectionUpgrade())
	if tunnel {
		b.tunnel(ctx, st, start)
		return
	}
	clientClose := req.Header.ConnectionClose()
	req.Header.ResetConnectionClose()
	req.Header.SetNoDefaultContentType(true) // a body without Content-Type goes on without one
	resp := &ctx.Response
	err := b.fast.do(st.node, req, resp)
	unreached := err != nil && (notSent(err) || busy(err))
	// A busy node is neither ejected nor left for another: its users'
	// sessions are there, and it will have a free connection in a moment.
	if err != nil && !busy(err) && b.failover(st, err, fastRetryable(req, err)) {
		b.setNodeURI(req, st)
		err = b.fast.do(st.node, req, resp)
		if err != nil && !busy(err) {
			b.connFailed(st.node, err)
		}
		unreached = unreached && err != nil && (notSent(err) || busy(err))
	}
	if err != nil {
		st.status = 0
		resp.Reset()
		b.fastError(ctx, st, err, unreached)
	} else {
		st.status = statusOf(resp.StatusCode())
		if v := resp.Header.PeekCookie(b.cfg.SessionCookie); v != nil {
			b.sawSessionCookie(st.node, string(v))
		} else if b.plainCookie != b.cfg.SessionCookie {
			if v := resp.Header.PeekCookie(b.plainCookie); v != nil {
				b.sawSessionCookie(st.node, string(v))
			}
		}
		resp.Header.ResetConnectionClose()
		delHopHeaders(&resp.Header)
		if st.setCookie != "" {
			resp.Header.Add("Set-Cookie", st.setCookie)
		}
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
	b.finish(st, start)
}

// noBackendFast is noBackend for the fast server.
func (b *Balancer) noBackendFast(ctx *fasthttp.RequestCtx) {
	if b.obs != nil {
		b.obs.NoNode()
	}
	ctx.Error("no backend available", fasthttp.StatusServiceUnavailable) // resets the headers: Retry-After after it
	ctx.Response.Header.Set("Retry-After", "1")
}

// fastError answers a request that failed with err on st.node, after the
// retry if any: 503 when no attempt could connect (unreached), as
// proxyError does, and 502 otherwise.
func (b *Balancer) fastError(ctx *fasthttp.RequestCtx, st *reqState, err error, unreached bool) {
	method := string(ctx.Request.Header.Method())
	if unreached {
		msg := "balancer: no node could be reached"
		if busy(err) {
			msg = "balancer: every connection to the node is in use"
		}
		b.cfg.Logger.Warn(msg, "node", st.node.name, "method", method, "err", err)
		b.noBackendFast(ctx)
		return
	}
	b.cfg.Logger.Warn("balancer: proxy error", "node", st.node.name, "method", method, "err", err)
	ctx.Error("bad gateway", fasthttp.StatusBadGateway)
}

// start returns the time a request arrived, for Observer.RequestDone;
// without an Observer, the zero time: the clock is not read.
func (b *Balancer) start() time.Time {
	if b.obs == nil {
		return time.Time{}
	}
	return time.Now()
}

// finish ends a request that start began, and reports it.
func (b *Balancer) finish(st *reqState, start time.Time) {
	n := st.node
	n.inflight.Add(-1)
	if b.obs != nil {
		b.obs.RequestDone(n.name, st.status, time.Since(start))
	}
}

// statusOf returns code if it is an HTTP status code (100 to 599), else 0.
func statusOf(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code
}

// hopHeaders are the hop-by-hop headers (RFC 9110, section 7.6.1) that a
// proxy does not pass on, as httputil.ReverseProxy; fasthttp handles
// Connection and Transfer-Encoding itself.
var hopHeaders = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

// delHopHeaders removes the hop-by-hop headers from a node's response,
// whatever the case of their names: the fast engine keeps the names as
// the node wrote them (its client does not normalize them), and Del
// matches such a name exactly, so "keep-alive" from a node that writes
// lower-case names would pass.
func delHopHeaders(h *fasthttp.ResponseHeader) {
	for {
		var name []byte
		for k := range h.All() {
			if isHopHeader(k) {
				name = k
				break
			}
		}
		if name == nil {
			return
		}
		h.DelBytes(name)
	}
}

// isHopHeader reports whether name is one of hopHeaders, in any case.
func isHopHeader(name []byte) bool {
	for _, h := range hopHeaders {
		if len(name) == len(h) && bytes.EqualFold(name, []byte(h)) {
			return true
		}
	}
	return false
}

// tunneled reports whether req goes through a tunnel: an upgrade, or a
// request for an event stream, whose response never ends.
func tunneled(req *fasthttp.Request) bool {
	if req.Header.ConnectionUpgrade() && len(req.Header.Peek("Upgrade")) > 0 {
		return true
	}
	return bytes.Contains(req.Header.Peek("Accept"), []byte("text/event-stream"))
}

// fastRetryable reports whether a request that failed with err may be sent
// to another node: nothing of it was sent (its body is buffered, so it can
// be sent again whole), or it is a bodyless GET, HEAD or OPTIONS.
func fastRetryable(req *fasthttp.Request, err error) bool {
	return notSent(err) || len(req.Body()) == 0 && safeMethod(string(req.Header.Method()))
}

// notSent reports whether err failed a request before any byte of it was
// sent: no connection could be made, or (errNodeClosed) the only ones
// were closed by the node.
func notSent(err error) bool {
	return dialFailed(err) || errors.Is(err, errNodeClosed)
}

// rewriteFast prepares the outgoing request as rewrite does for
// ServeHTTP: X-Forwarded-For, -Host and -Proto, hop-by-hop headers
// removed (but Upgrade when upgrade), and the node's address and path prefix.
func (b *Balancer) rewriteFast(ctx *fasthttp.RequestCtx, st *reqState, upgrade bool) {
	h := &ctx.Request.Header
	ip := ctx.RemoteIP().String()
	proto := "http"
	if ctx.IsTLS() {
		proto = "https"
	}
	host := string(h.Host())
	prior := h.Peek("X-Forwarded-For")
	if b.cfg.TrustForwarded {
		if len(prior) > 0 {
			ip = string(prior) + ", " + ip
		}
		if v := h.Peek("X-Forwarded-Host"); len(v) > 0 {
			host = string(v)
		}
		if v := h.Peek("X-Forwarded-Proto"); len(v) > 0 {
			proto = string(v)
		}
	}
	h.Del("Forwarded")
	h.Set("X-Forwarded-For", ip)
	h.Set("X-Forwarded-Host", host)
	h.Set("X-Forwarded-Proto", proto)
	for _, name := range hopHeaders {
		if name == "Upgrade" && upgrade {
			continue
		}
		h.Del(name)
	}
	b.setNodeURI(&ctx.Request, st)
}

// setNodeURI points req at node n: its Host, and the request's path
// under n's path prefix, if it has one. st.path keeps the path the client
// sent, for a retry on a node with another prefix.
func (b *Balancer) setNodeURI(req *fasthttp.Request, st *reqState) {
	n := st.node
	uri := req.URI()
	uri.DisablePathNormalizing = true
	prefix := strings.TrimSuffix(n.url.Path, "/")
	if prefix != "" || st.path != "" {
		if st.path == "" {
			st.path = string(uri.PathOriginal())
		}
		uri.SetPath(prefix + st.path)
	}
	req.SetHost(n.url.Host)
	uri.SetScheme(n.url.Scheme)
}

// tunnel sends req to its node on a connection of its own and then copies
// bytes both ways until either side closes.
func (b *Balancer) tunnel(ctx *fasthttp.RequestCtx, st *reqState, start time.Time) {
	req := &ctx.Request
	conn, err := b.fast.dial(st.node)
	unreached := err != nil && dialFailed(err)
	if err != nil && b.failover(st, err, true) { // no connection: safe to try another node
		b.setNodeURI(req, st)
		conn, err = b.fast.dial(st.node)
		if err != nil {
			b.connFailed(st.node, err)
		}
		unreached = unreached && err != nil && dialFailed(err)
	}
	if err != nil {
		st.status = 0
		b.fastError(ctx, st, err, unreached)
		b.finish(st, start)
		return
	}
	upgrade := req.Header.ConnectionUpgrade()
	if !upgrade {
		req.Header.SetConnectionClose() // an event stream: the node's connection ends with it
	}
	conn.SetWriteDeadline(time.Now().Add(b.fast.cfg.BackendTimeout))
	if _, err := req.WriteTo(conn); err != nil {
		conn.Close()
		st.status = 0
		ctx.Error("bad gateway", fasthttp.StatusBadGateway)
		b.finish(st, start)
		return
	}
	conn.SetWriteDeadline(time.Time{})
	ctx.HijackSetNoResponse(true)
	b.tunnels.add() // counted from here, so that WaitTunnels cannot miss it
	ctx.Hijack(func(c net.Conn) {
		defer b.finish(st, start)
		defer conn.Close()
		raw := c // the connection itself: the hijacked one's Close does nothing (fasthttp closes it when we return)
		if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
			raw = u.UnsafeConn()
		}
		b.tunnels.attach(raw)
		defer b.tunnels.done(raw)
		c.SetDeadline(time.Time{})
		br := bufio.NewReaderSize(conn, 4<<10)
		conn.SetReadDeadline(time.Now().Add(b.fast.cfg.BackendTimeout))
		code := peekStatus(br)
		st.status = statusOf(code)
		upgraded := code == fasthttp.StatusSwitchingProtocols
		if upgrade && !upgraded {
			// The node refused the upgrade. Its answer is relayed and the
			// connection ends: were the bytes to flow on both ways, the
			// client's next requests on this connection would reach the
			// node unparsed, past the routing and the X-Forwarded-*
			// rewriting (WebSocket smuggling).
			b.refusedUpgrade(c, br, st.setCookie) // within the read deadline set above
			raw.Close()
			return
		}
		conn.SetReadDeadline(time.Time{})
		if code != 0 && st.setCookie != "" {
			if err := writeStatusWithCookie(c, br, st.setCookie); err != nil {
				raw.Close()
				return
			}
		}
		// c must not be used once this function returns (fasthttp reuses
		// it), so the copy from the client ends first: closing raw ends it.
		// Only an accepted upgrade carries the client's bytes to the node;
		// an event stream's request was sent whole, and what the client
		// sends afterwards is dropped (its end ends the stream).
		clientDone := make(chan struct{})
		go func() {
			defer close(clientDone)
			if upgraded {
				io.Copy(conn, c)
			} else {
				io.Copy(io.Discard, c)
			}
			conn.Close() // ends the copy below if the client went first
		}()
		io.Copy(c, br)
		raw.Close()
		<-clientDone
	})
}

// peekStatus returns the status code of the response br starts with
// (HTTP/1.x), or 0 if it cannot be read.
func peekStatus(br *bufio.Reader) int {
	line, err := br.Peek(len("HTTP/1.1 200"))
	if err != nil || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0
	}
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0
		}
		code = code*10 + int(d-'0')
	}
	return code
}

// writeStatusWithCookie copies the node's status line from br to c and
// adds the affinity cookie after it, so that a tunneled response carries
// it as a proxied one does; the rest of the response follows unchanged.
func writeStatusWithCookie(c io.Writer, br *bufio.Reader, cookie string) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if _, err := c.Write(line); err != nil {
		return err
	}
	_, err = io.WriteString(c, "Set-Cookie: "+cookie+"\r\n")
	return err
}

// refusedUpgrade relays to the client c the node's answer to an upgrade it
// refused, read whole from br (as a proxied response is, within the body
// limit), with Connection: close and the affinity cookie, if any; or 502
// if it cannot be read.
func (b *Balancer) refusedUpgrade(c net.Conn, br *bufio.Reader, cookie string) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.Header.DisableNormalizing()
	if err := resp.ReadLimitBody(br, b.fast.cfg.MaxResponseBodyBytes); err != nil {
		resp.Reset()
		resp.SetStatusCode(fasthttp.StatusBadGateway)
		resp.SetBodyString("bad gateway")
	}
	delHopHeaders(&resp.Header)
	if cookie != "" {
		resp.Header.Add("Set-Cookie", cookie)
	}
	resp.SetConnectionClose()
	c.SetWriteDeadline(time.Now().Add(b.fast.cfg.BackendTimeout))
	resp.WriteTo(c)
}

// dial opens a connection of its own to n.
func (fp *fastProxy) dial(n *node) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	if n.url.Scheme == "https" {
		return (&tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: n.url.Hostname()}}).Dial("tcp", hostPort(n))
	}
	return d.Dial("tcp", hostPort(n))
}
