package strategy

import (
	"context"
	"fmt"

	"github.com/sessionkit/sessionkit/store/memstore"
)

// memoryStrategy is sticky sessions: each node keeps its own sessions in
// its memory, and the balancer sends each user back to the node that
// made their session.
var memoryStrategy = Strategy{
	Name:  "memory",
	What:  "sticky sessions: each node's memstore, the balancer routes by route tag",
	Flags: []*Flag{maxSessionsFlag},
	check: func(s *Settings) error {
		if s.MaxSessions < 0 {
			return &FlagError{"max-sessions", fmt.Sprint(s.MaxSessions), "must be 0 (no bound) or positive"}
		}
		return nil
	},
	open:    openMemory,
	testbed: independent(openMemory),
	plan:    memoryPlan,
}

var maxSessionsFlag = &Flag{Name: "max-sessions", When: "--strategy memory",
	define: func(fs FlagSet, name string, s *Settings) {
		fs.Int(&s.MaxSessions, name, memstore.DefaultMaxEntries,
			"bound the sessions held in memory to `count` (0: no bound); beyond it\n        the session closest to its end is evicted, and counted")
	}}

func openMemory(_ context.Context, n *Node) (*Sessions, error) {
	maxEntries := n.Settings.MaxSessions
	if maxEntries == 0 {
		maxEntries = -1 // memstore: no bound
	}
	ms, err := memstore.New(memstore.Config{MaxEntries: maxEntries})
	if err != nil {
		return nil, err
	}
	s, err := stored(n, ms, false, nil)
	if err != nil {
		return nil, err
	}
	s.Memstore = ms
	return s, nil
}
