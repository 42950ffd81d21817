//go:build !linux

package balancer

import "net"

// sysConn is Linux only (sysconn_linux.go): elsewhere connections are
// the net.Conns themselves.
type sysConn struct{ net.Conn }

func newSysConn(c net.Conn) net.Conn { return c }

func asSysConn(net.Conn) *sysConn { return nil }

func (*sysConn) sendAwait([]byte, bool) (int, error) { panic("balancer: no sysConn on this system") }
