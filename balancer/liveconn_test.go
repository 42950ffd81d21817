package balancer

import (
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection: the
// balancer's, wrapped in a liveConn, and the node's.
func tcpPair(t testing.TB) (*liveConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return newLiveConn(c, c), s.(*net.TCPConn)
}

// settle gives loopback a moment to deliver what the node did.
func settle() { time.Sleep(20 * time.Millisecond) }

func TestLiveConn_closedByPeer(t *testing.T) {
	if !peekSupported {
		t.Skip("no liveness check on this system")
	}
	for _, tc := range []struct {
		name string
		node func(*net.TCPConn)
		want bool
	}{
		{"idle", func(*net.TCPConn) {}, false},
		{"closed", func(s *net.TCPConn) { s.Close() }, true},
		{"reset", func(s *net.TCPConn) { s.SetLinger(0); s.Close() }, true},
		{"half closed", func(s *net.TCPConn) { s.CloseWrite() }, true},
		{"unasked bytes", func(s *net.TCPConn) { s.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n")) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := tcpPair(t)
			tc.node(s)
			settle()
			if got := c.closedByPeer(); got != tc.want {
				t.Errorf("closedByPeer = %v; want %v", got, tc.want)
			}
		})
	}
}

// TestLiveConn_checksOnlyReuse: the check runs on the first Write after a
// Read (the next request on a reused connection), and a failed check
// writes nothing.
func TestLiveConn_checksOnlyReuse(t *testing.T) {
	if !peekSupported {
		t.Skip("no liveness check on this system")
	}
	c, s := tcpPair(t)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n")); err != nil { // a new connection: no check
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := s.Read(buf)
	s.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
	c.Read(buf)
	s.Close() // the node closes the idle connection
	settle()
	if _, err := c.Write([]byte("POST / HTTP/1.1\r\n")); err != errNodeClosed {
		t.Fatalf("Write on a reused connection the node closed: %v; want errNodeClosed", err)
	}
	if n != len("GET / HTTP/1.1\r\n\r\n") && n != len("GET / HTTP/1.1\r\n") {
		t.Errorf("node read %d bytes", n)
	}
}

// BenchmarkLiveConn_check is the cost of the check on a live connection:
// one non-blocking recv(MSG_PEEK) per reused connection.
func BenchmarkLiveConn_check(b *testing.B) {
	c, _ := tcpPair(b)
	b.ReportAllocs()
	for b.Loop() {
		if c.closedByPeer() {
			b.Fatal("a live connection seen as closed")
		}
	}
}
