package balancer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// sysPair returns the two ends of a loopback TCP connection: the
// balancer's, as a sysConn, and the node's.
func sysPair(t testing.TB) (*sysConn, *net.TCPConn) {
	t.Helper()
	c, s := tcpPair(t)
	sc := asSysConn(c.Conn)
	if sc == nil {
		t.Fatal("a TCP connection is not made a sysConn")
	}
	return sc, s
}

// TestSysConn_sendAwait: the request goes out whole, sendAwait returns
// once the answer can be read, and Read reads it.
func TestSysConn_sendAwait(t *testing.T) {
	c, s := sysPair(t)
	req := []byte("GET / HTTP/1.1\r\nHost: n1\r\n\r\n")
	answer := "HTTP/1.1 204 No Content\r\n\r\n"
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 256)
		n, _ := io.ReadAtLeast(s, buf, len(req))
		got <- buf[:n]
		time.Sleep(20 * time.Millisecond) // sendAwait waits meanwhile
		io.WriteString(s, answer)
	}()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for i := range 2 { // the second time on a reused connection, checked first
		if n, err := c.sendAwait(req, i > 0); n != len(req) || err != nil {
			t.Fatalf("sendAwait = %d, %v; want %d, nil", n, err, len(req))
		}
		if b := <-got; !bytes.Equal(b, req) {
			t.Fatalf("node read %q; want %q", b, req)
		}
		buf := make([]byte, 256)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != answer {
			t.Fatalf("Read = %q, %v; want %q", buf[:n], err, answer)
		}
		if i == 0 {
			go func() {
				buf := make([]byte, 256)
				n, _ := io.ReadAtLeast(s, buf, len(req))
				got <- buf[:n]
				io.WriteString(s, answer) // at once, this time
			}()
		}
	}
}

// TestSysConn_sendAwait_closedByPeer: on a reused connection that the
// node closed, reset, half closed or wrote to unasked, sendAwait returns
// errNodeClosed and writes nothing.
func TestSysConn_sendAwait_closedByPeer(t *testing.T) {
	for _, tc := range []struct {
		name string
		node func(*net.TCPConn)
	}{
		{"closed", func(s *net.TCPConn) { s.Close() }},
		{"reset", func(s *net.TCPConn) { s.SetLinger(0); s.Close() }},
		{"half closed", func(s *net.TCPConn) { s.CloseWrite() }},
		{"unasked bytes", func(s *net.TCPConn) { s.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := sysPair(t)
			tc.node(s)
			settle()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.sendAwait([]byte("POST / HTTP/1.1\r\n\r\n"), true); n != 0 || err != errNodeClosed {
				t.Fatalf("sendAwait = %d, %v; want 0, errNodeClosed", n, err)
			}
			if tc.name == "half closed" || tc.name == "unasked bytes" { // the node still reads
				s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if n, _ := s.Read(make([]byte, 64)); n != 0 {
					t.Errorf("the node read %d bytes; want none", n)
				}
			}
		})
	}
}

// TestSysConn_sendAwait_ends: sendAwait also returns when the node closes
// the connection after the request instead of answering, or does not
// answer within the deadline.
func TestSysConn_sendAwait_ends(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		c, s := sysPair(t)
		go func() {
			io.ReadAtLeast(s, make([]byte, 64), 4)
			s.Close()
		}()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.sendAwait([]byte("GET / HTTP/1.1\r\n\r\n"), false); err != nil {
			t.Fatalf("sendAwait: %v", err)
		}
		if n, err := c.Read(make([]byte, 64)); n != 0 || err == nil {
			t.Errorf("Read = %d, %v; want the end of the connection", n, err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		c, _ := sysPair(t)
		c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.sendAwait([]byte("GET / HTTP/1.1\r\n\r\n"), false)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("sendAwait with no answer: %v; want a deadline error", err)
		}
	})
}

// TestSysConn_bigWrite: a write larger than the socket's buffers waits
// for the peer to read, and arrives whole; reads and writes may run at the
// same time (a tunnel).
func TestSysConn_bigWrite(t *testing.T) {
	c, s := sysPair(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	s.SetDeadline(time.Now().Add(10 * time.Second))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	echoed := make(chan error, 1)
	go func() { // the node echoes what it reads
		_, err := io.CopyN(s, s, int64(len(big)))
		echoed <- err
	}()
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(c, int64(len(big))))
		read <- b
	}()
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	if b := <-read; !bytes.Equal(b, big) {
		t.Errorf("read back %d bytes, not what was written", len(b))
	}
	s.Close()
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after the node closed = %d, %v; want 0, EOF", n, err)
	}
}
