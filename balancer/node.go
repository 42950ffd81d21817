package balancer

import (
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// node is one backend and its state. Its atomic fields are read on every
// request; health counters are guarded by checkMu.
type node struct {
	name string
	url  *url.URL
	id   string // opaque id in affinity cookies
	hash uint64 // hashKey(name), for rendezvous scores

	up            atomic.Bool  // by the active health checks
	ejectedUntil  atomic.Int64 // unix ns; passive ejection
	drainDeadline atomic.Int64 // unix ns; 0: not draining
	inflight      atomic.Int64
	tag           atomic.Pointer[string] // the route tag its answers set, when not its name; see routetag.go

	checkMu   sync.Mutex
	passes    int
	failures  int
	lastCheck string // result of the last check, for Nodes

	sessions keyCounter
}

// State names of NodeStatus.State.
const (
	StateActive   = "active"   // takes sticky requests and new sessions
	StateDraining = "draining" // keeps its sessions until the drain deadline, takes no new ones
	StateDrained  = "drained"  // past its drain deadline: takes nothing
	StateDown     = "down"     // failed its health checks
	StateEjected  = "ejected"  // a connection error took it out for a while
)

// state returns the node's state at now.
func (n *node) state(now int64) string {
	switch {
	case !n.up.Load():
		return StateDown
	case now < n.ejectedUntil.Load():
		return StateEjected
	}
	if d := n.drainDeadline.Load(); d != 0 {
		if now >= d {
			return StateDrained
		}
		return StateDraining
	}
	return StateActive
}

// sticky reports whether the node takes the requests of its sessions.
func (n *node) sticky(now int64) bool {
	if !n.up.Load() || now < n.ejectedUntil.Load() {
		return false
	}
	d := n.drainDeadline.Load()
	return d == 0 || now < d
}

// fresh reports whether the node takes new sessions and re-homes.
func (n *node) fresh(now int64) bool {
	return n.up.Load() && now >= n.ejectedUntil.Load() && n.drainDeadline.Load() == 0
}

// nodeSet is an immutable snapshot of the nodes, replaced as a whole on
// every change so that requests read it without locking.
type nodeSet struct {
	list   []*node // in the order added
	byName map[string]*node
	byID   map[string]*node
	byTag  map[string]*node // learned route tags that name no node (routetag.go); nil if none
}

func newNodeSet(list []*node) *nodeSet {
	s := &nodeSet{list: list, byName: make(map[string]*node, len(list)), byID: make(map[string]*node, len(list))}
	for _, n := range list {
		s.byName[n.name] = n
		s.byID[n.id] = n
	}
	for _, n := range list {
		if p := n.tag.Load(); p != nil && s.byName[*p] == nil {
			if s.byTag == nil {
				s.byTag = map[string]*node{}
			}
			s.byTag[*p] = n
		}
	}
	return s
}

// routed returns the node that the route tag route names: the node of
// that name or, failing that, the node that was seen to tag its session
// IDs so; nil if none.
func (s *nodeSet) routed(route string) *node {
	if n := s.byName[route]; n != nil {
		return n
	}
	return s.byTag[route]
}

// keyCounter approximates the number of distinct affinity keys seen in the
// last window/2 to window: two generations of hashed keys, the older
// dropped every window/2. Each generation holds at most maxKeys keys.
type keyCounter struct {
	mu       sync.Mutex
	cur, old map[uint64]struct{}
	since    int64 // unix ns when cur began
}

const maxKeys = 1 << 18

func (k *keyCounter) see(key uint64, now int64, window time.Duration) {
	k.mu.Lock()
	k.rotate(now, window)
	if _, ok := k.cur[key]; !ok && len(k.cur) < maxKeys {
		k.cur[key] = struct{}{}
	}
	k.mu.Unlock()
}

func (k *keyCounter) rotate(now int64, window time.Duration) {
	if k.cur == nil {
		k.cur, k.since = make(map[uint64]struct{}), now
	}
	half := int64(window / 2)
	switch {
	case now-k.since >= 2*half: // both generations are stale
		k.old, k.cur, k.since = nil, make(map[uint64]struct{}), now
	case now-k.since >= half:
		k.old, k.cur, k.since = k.cur, make(map[uint64]struct{}, len(k.cur)), k.since+half
	}
}

func (k *keyCounter) count(now int64, window time.Duration) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rotate(now, window)
	n := len(k.cur)
	for key := range k.old {
		if _, ok := k.cur[key]; !ok {
			n++
		}
	}
	return n
}

// lostSet remembers recently counted lost sessions so that each is
// counted about once, not once per request. It is reset when full.
type lostSet struct {
	mu   sync.Mutex
	keys map[uint64]struct{}
}

const maxLost = 1 << 16

// first reports whether key was not seen before, and remembers it.
func (l *lostSet) first(key uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.keys[key]; ok {
		return false
	}
	if l.keys == nil || len(l.keys) >= maxLost {
		l.keys = make(map[uint64]struct{})
	}
	l.keys[key] = struct{}{}
	return true
}
