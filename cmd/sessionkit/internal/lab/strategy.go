package lab

import (
	"net"
	"os"
)

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago.
func freeAddrs(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// scratchDir makes a directory for one strategy's files.
func scratchDir() (string, func(), error) {
	dir, err := os.MkdirTemp("", "sessionkit-lab-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
