//go:build unix && !linux

package balancer

import "syscall"

const peekSupported = true

// peekAlive reports whether the connected TCP socket fd is open both ways
// with nothing to read: a non-blocking recv(MSG_PEEK) of one byte finds no
// data (EAGAIN). It finds 0 bytes (the peer closed), an error (it reset the
// connection), or a byte no request asked for, otherwise.
func peekAlive(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return true
		default: // closed (0 bytes), reset (an error), or unasked bytes
			return false
		}
	}
}
