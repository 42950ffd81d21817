package memcachedstore

import (
	"net"

	"github.com/bradfitz/gomemcache/memcache"
)

// servers is the store's memcache.ServerSelector: it spreads item keys over
// the servers by rendezvous hashing (highest random weight, Thaler and
// Ravishankar 1998). A key goes to the server whose hash of (server name,
// key) is the highest, so that
//
//   - every client with the same list of names picks the same server,
//     whatever the order of the list and without talking to the others;
//   - removing a server moves only the keys it held (each to its own
//     second choice), and adding one moves only the keys it now wins,
//     about 1/n of them. gomemcache's own ServerList (CRC-32 mod n) moves
//     nearly all keys when n changes.
//
// A server's name is the address as configured ("10.0.0.1:11211"), not
// what it resolves to, so that clients agree even if DNS answers differ.
// A dead server is not skipped: its keys fail (fast, behind its circuit
// breaker) instead of moving to a second server, which clients that
// disagree about its death would then write apart.
type servers struct {
	names []string
	addrs []net.Addr
	seeds []uint64 // hash of each name
}

var _ memcache.ServerSelector = (*servers)(nil)

// newServers returns the selector of the servers names (host:port). Names
// are not resolved here: the client dials each name as it is, so a DNS
// name follows its changes on every new connection.
func newServers(names []string) *servers {
	s := &servers{names: names}
	for _, n := range names {
		s.addrs = append(s.addrs, addr(n))
		s.seeds = append(s.seeds, fnv1a(fnvOffset, n))
	}
	return s
}

// addr is a server's address as configured, for the client to dial.
type addr string

func (addr) Network() string  { return "tcp" }
func (a addr) String() string { return string(a) }

// pick returns the index of key's server.
func (s *servers) pick(key string) int {
	if len(s.seeds) == 1 {
		return 0
	}
	best, bestScore := 0, uint64(0)
	for i, seed := range s.seeds {
		if sc := score(seed, key); i == 0 || sc > bestScore {
			best, bestScore = i, sc
		}
	}
	return best
}

// PickServer implements memcache.ServerSelector.
func (s *servers) PickServer(key string) (net.Addr, error) {
	return s.addrs[s.pick(key)], nil
}

// Each implements memcache.ServerSelector.
func (s *servers) Each(f func(net.Addr) error) error {
	for _, a := range s.addrs {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}

// score is the rendezvous weight of key on the server with seed: FNV-1a of
// the key started from the server's hash, then a 64-bit finalizer
// (splitmix64's) so that keys that differ in their last bytes still spread
// evenly.
func score(seed uint64, key string) uint64 {
	return mix(fnv1a(seed, key))
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
