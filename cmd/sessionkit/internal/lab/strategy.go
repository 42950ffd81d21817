package lab

import (
	"errors"
	"net"
	"os"
	"sync"
)

// handedOut holds every address freeAddrs has returned in this process.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago, and which it has never returned before in this process: the
// kernel may hand out a port again as soon as its listener is closed, and
// two of a lab's processes (a node's HTTP port and another node's cluster
// port, picked by separate calls) then tried to bind the same one.
func freeAddrs(n int) ([]string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for attempt := 0; len(out) < n; attempt++ {
		if attempt == 100*n {
			return nil, errors.New("lab: no loopback port left that was not handed out before")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l) // open until the end, so that it is not picked again meanwhile
		a := l.Addr().String()
		if handedOut.addrs[a] {
			continue
		}
		handedOut.addrs[a] = true
		out = append(out, a)
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
