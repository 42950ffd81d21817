package balancer

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// errNodeClosed is the Write error of a pooled connection to a node that
// the node has closed (or reset, or written to unasked) while it was idle.
// Nothing of the request was written: it may be sent again whatever its
// method.
var errNodeClosed = errors.New("balancer: the node had closed the idle connection; nothing was sent")

// liveConn is a connection to a node, kept in the fast engine's pool, that
// checks before it is reused that the node has not closed it. Go's
// http.Transport knows it from the goroutine that reads each idle
// connection; HAProxy and nginx from the readiness of its socket. fasthttp
// finds out only by sending a request on it and reading no answer, which
// fails a POST (never sent twice) with 502 when a node has died or closed
// its side of an idle connection.
//
// The check runs on the first Write after a Read: the first write of a
// request on a connection that has carried one already. It costs one
// non-blocking recv(MSG_PEEK) system call per reused connection. A
// connection is used by one request at a time, so its fields need no lock.
//
// A plain TCP connection on Linux is a sysConn (sys), whose sendAwait
// makes the check and the write of a request in one go and then waits
// for the answer, so that the Read after it does not first try a read
// that finds nothing yet.
type liveConn struct {
	net.Conn               // the connection, TLS over raw for an https node
	raw      rawConn       // the TCP socket; nil: no check
	sys      *sysConn      // Conn, if it is a sysConn
	timeout  time.Duration // for each request and its response, from its first Write
	started  bool          // a Write since the last Read: the deadline is set
	reused   bool          // a Read since the last Write: the next Write starts a request
	peek     func(fd uintptr) bool
	dead     bool // set by peek
}

// rawConn is the part of syscall.RawConn the check uses.
type rawConn interface {
	Read(f func(fd uintptr) bool) error
}

func newLiveConn(c, raw net.Conn) *liveConn {
	lc := &liveConn{Conn: c}
	if sc, ok := raw.(syscall.Conn); ok && peekSupported {
		if rc, err := sc.SyscallConn(); err == nil {
			lc.raw = rc
			lc.peek = lc.peekFD // one closure per connection, not one per check
		}
	}
	return lc
}

func (c *liveConn) Read(p []byte) (int, error) {
	c.started = false
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.reused = true
	}
	return n, err
}

// Write fails with errNodeClosed, writing nothing, when it starts a
// request on a connection that the node has closed.
func (c *liveConn) Write(p []byte) (int, error) {
	if !c.started && c.timeout > 0 {
		// One deadline for the request and its whole response, in one
		// call, rather than fasthttp's two (write, then read).
		c.started = true
		if err := c.Conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
			return 0, err
		}
	}
	if c.sys != nil && len(p) < fastWriteBufferSize {
		// The whole request, or its end: fasthttp writes through a
		// bufio.Writer of that size, so that only the last write of a
		// request is shorter.
		check := c.reused && c.raw != nil
		c.reused = false
		return c.sys.sendAwait(p, check)
	}
	if c.reused {
		c.reused = false
		if c.closedByPeer() {
			return 0, errNodeClosed
		}
	}
	return c.Conn.Write(p)
}

// closedByPeer reports whether the node has closed or reset the
// connection, or sent bytes that no request asked for, which the next
// response would be mistaken for: Go's http.Transport drops such a
// connection too.
func (c *liveConn) closedByPeer() bool {
	if c.raw == nil {
		return false
	}
	c.dead = false
	if err := c.raw.Read(c.peek); err != nil {
		return true // closed on our side
	}
	return c.dead
}

// peekFD runs inside raw.Read: it sets c.dead and returns true, so that
// Read never waits.
func (c *liveConn) peekFD(fd uintptr) bool {
	c.dead = !peekAlive(fd)
	return true
}

// liveTLSConn is a liveConn over TLS. Its Handshake method tells fasthttp
// that the connection is TLS already: the handshake was done when it was
// dialed, below the check.
type liveTLSConn struct {
	*liveConn
	tls *tls.Conn
}

func (c *liveTLSConn) Handshake() error { return c.tls.Handshake() }

// dialLive dials n for the fast engine's pool: TCP, and TLS for an https
// node, within dialTimeout. Each request on the connection and its
// response must be done within timeout of its first write.
func dialLive(n *node, addr string, timeout time.Duration) (net.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return nil, err
	}
	if n.url.Scheme != "https" {
		var c net.Conn = raw
		s := asSysConn(raw)
		if s != nil {
			c = s
		}
		lc := newLiveConn(c, raw)
		lc.sys, lc.timeout = s, timeout
		return lc, nil
	}
	tc := tls.Client(raw, &tls.Config{ServerName: n.url.Hostname()})
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	lc := newLiveConn(tc, raw)
	lc.timeout = timeout
	return &liveTLSConn{liveConn: lc, tls: tc}, nil
}
