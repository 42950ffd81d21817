package balancer

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

const peekSupported = true

// peekAlive reports whether the connected TCP socket fd is open both ways
// with nothing to read: a non-blocking recv(MSG_PEEK) of one byte finds no
// data (EAGAIN). It finds 0 bytes (the peer closed), an error (it reset the
// connection), or a byte no request asked for, otherwise.
func peekAlive(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return true
		default: // closed (0 bytes), reset (an error), or unasked bytes
			return false
		}
	}
}

// sysRead and sysWrite are read(2) and write(2) on a non-blocking socket,
// made as raw system calls, which do not tell the Go scheduler. On a
// socket they never block; but a write on loopback, which also runs the
// receiving side's TCP, often takes long enough that the scheduler would
// hand the processor to another thread meanwhile, and the thread would
// then have to get one back: more work than the call itself.
//
// Built with -race, they are syscall.Read and syscall.Write, which tell
// the race detector, as a net.Conn's reads and writes do, that what was
// written before a write happened before what follows the read of it.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		var n int
		var errno syscall.Errno
		if raceEnabled {
			var err error
			n, err = syscall.Read(int(fd), p)
			errno = errnoOf(err)
		} else {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			n, errno = int(r), e
		}
		if errno != syscall.EINTR {
			return n, errno
		}
	}
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		var n int
		var errno syscall.Errno
		if raceEnabled {
			var err error
			n, err = syscall.Write(int(fd), p)
			errno = errnoOf(err)
		} else {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			n, errno = int(r), e
		}
		if errno != syscall.EINTR {
			return n, errno
		}
	}
}

// errnoOf returns err, an error of package syscall, as an Errno.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if errno, ok := err.(syscall.Errno); ok {
		return errno
	}
	return syscall.EINVAL
}

// sysConn is a TCP connection that reads and writes with sysRead and
// sysWrite on its non-blocking socket, waiting in Go's network poller as
// a net.Conn does (within its deadlines). The fast engine's connections
// to clients (FastListener) and to nodes (dialLive) are sysConns.
//
// Its Read and its Write may run at the same time (a tunnel), so each has
// its own state; sendAwait, for a connection to a node, is never called
// at the same time as either.
type sysConn struct {
	*net.TCPConn
	raw syscall.RawConn

	// The state of the callbacks below, which run inside raw.Read and
	// raw.Write: they are made once per connection, not once per call.
	rbuf, wbuf  []byte
	rn, wn      int
	rerr, werr  syscall.Errno
	check       bool // sendAwait: peek first
	dead, sent  bool // sendAwait: the peek failed; the request was written whole
	readFD      func(fd uintptr) bool
	writeFD     func(fd uintptr) bool
	sendAwaitFD func(fd uintptr) bool
}

// newSysConn returns c as a sysConn if it is a TCP connection, else c.
func newSysConn(c net.Conn) net.Conn {
	if s := asSysConn(c); s != nil {
		return s
	}
	return c
}

// asSysConn returns c as a *sysConn, or nil if it is not a TCP
// connection.
func asSysConn(c net.Conn) *sysConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &sysConn{TCPConn: tc, raw: raw}
	s.readFD = s.readOnce
	s.writeFD = s.writeAll
	s.sendAwaitFD = s.sendThenWait
	return s
}

func (s *sysConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rbuf, s.rn, s.rerr = p, 0, 0
	err := s.raw.Read(s.readFD)
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err // a deadline, or the connection was closed
	case s.rerr != 0:
		return 0, s.opError("read", s.rerr)
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

// readOnce runs inside raw.Read: it reads into s.rbuf, or asks raw.Read to
// wait (false) until the socket is readable.
func (s *sysConn) readOnce(fd uintptr) bool {
	n, errno := sysRead(fd, s.rbuf)
	if errno == syscall.EAGAIN {
		return false
	}
	s.rn, s.rerr = n, errno
	return true
}

// Write writes p whole, waiting while the socket's buffer is full (within
// the write deadline).
func (s *sysConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wbuf, s.wn, s.werr = p, 0, 0
	err := s.raw.Write(s.writeFD)
	n := s.wn
	s.wbuf = nil
	switch {
	case s.werr != 0:
		return n, s.opError("write", s.werr)
	case err != nil:
		return n, err
	}
	return n, nil
}

// writeAll runs inside raw.Write: it writes what is left of s.wbuf, and
// asks raw.Write to wait (false) while the socket's buffer is full.
func (s *sysConn) writeAll(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		n, errno := sysWrite(fd, s.wbuf[s.wn:])
		switch errno {
		case 0:
			s.wn += n
		case syscall.EAGAIN:
			return false
		default:
			s.werr = errno
			return true
		}
	}
	return true
}

// sendAwait writes p, a whole request to a node, and returns once the
// node's answer (or the end of the connection) can be read, so that the
// Read that follows finds it at once, where a net.Conn would first try a
// read that finds nothing yet: one system call less per request. With
// check, it first peeks at the socket (peekAlive) and returns
// errNodeClosed, writing nothing, if the node has closed it. A p that
// cannot be written at once (the socket's buffer is full) is written as
// Write does, and then sendAwait does not wait.
//
// The wait cannot miss the answer: raw.Read forgets what the socket
// reported before it calls sendThenWait the first time, and so before the
// peek and the write, so that anything that arrives after the peek wakes
// it. It lasts until the read deadline (liveConn sets one deadline for
// both).
func (s *sysConn) sendAwait(p []byte, check bool) (int, error) {
	s.wbuf, s.wn, s.werr, s.check, s.dead, s.sent = p, 0, 0, check, false, false
	err := s.raw.Read(s.sendAwaitFD)
	n := s.wn
	s.wbuf = nil
	switch {
	case s.dead:
		return 0, errNodeClosed
	case s.werr != 0:
		return n, s.opError("write", s.werr)
	case err != nil:
		if check && n == 0 {
			return 0, errNodeClosed // closed on our side, or past the deadline: as liveConn.closedByPeer
		}
		return n, err
	case n < len(p):
		m, err := s.Write(p[n:])
		return n + m, err
	}
	return n, nil
}

// sendThenWait runs inside raw.Read for sendAwait: it peeks (if s.check),
// writes s.wbuf, and asks raw.Read to wait (false) until the socket is
// readable; called again then, it returns true.
func (s *sysConn) sendThenWait(fd uintptr) bool {
	if s.sent {
		return true
	}
	if s.check {
		s.check = false
		if !peekAlive(fd) {
			s.dead = true
			return true
		}
	}
	n, errno := sysWrite(fd, s.wbuf)
	switch errno {
	case 0:
		s.wn = n
	case syscall.EAGAIN:
		return true
	default:
		s.werr = errno
		return true
	}
	s.sent = n == len(s.wbuf)
	return !s.sent
}

// opError is the error of a failed system call, as a net.Conn reports it.
func (s *sysConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
