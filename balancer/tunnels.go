package balancer

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
)

// tunnelSet tracks the long-lived connections in flight: upgrades
// (WebSocket) and event streams, which an HTTP server's graceful shutdown
// does not wait for.
type tunnelSet struct {
	mu    sync.Mutex
	n     int
	conns map[net.Conn]struct{} // the fast server's hijacked client connections
	idle  chan struct{}         // closed while n == 0
}

// add counts one tunnel.
func (s *tunnelSet) add() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		s.idle = make(chan struct{})
	}
	s.n++
}

// attach records the client connection of a counted tunnel, for
// WaitTunnels to close.
func (s *tunnelSet) attach(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
}

// done uncounts a tunnel and forgets its connection (c may be nil).
func (s *tunnelSet) done(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n--
	delete(s.conns, c)
	if s.n == 0 {
		close(s.idle)
	}
}

// WaitTunnels waits until the WebSocket (and other upgraded) connections
// and server-sent event streams in flight have ended, for a graceful
// shutdown after the HTTP server's own (http.Server.Shutdown and the fast
// server's ShutdownWithContext wait for requests, not for these). If ctx
// ends first, it closes the fast server's tunnels (the net/http engine's
// end when its server's process does) and returns an error that says how
// many were still open. Safe for concurrent use.
func (b *Balancer) WaitTunnels(ctx context.Context) error {
	s := &b.tunnels
	for {
		s.mu.Lock()
		n, idle := s.n, s.idle
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			s.mu.Lock()
			n = s.n
			for c := range s.conns {
				c.Close()
			}
			s.mu.Unlock()
			return fmt.Errorf("balancer: %d WebSocket or event-stream connections still open: %w", n, ctx.Err())
		}
	}
}

// isTunnel reports whether r opens a long-lived connection: an upgrade, or
// a request for an event stream.
func isTunnel(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" && headerHasToken(r.Header["Connection"], "upgrade") {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
