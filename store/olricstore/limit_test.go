package olricstore_test

import (
	"crypto/rand"
	"testing"

	"github.com/sessionkit/sessionkit/internal/accounttest"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/olricstore"
)

// TestSessionLimit_concurrentLogins: 32 logins of one user at once, spread
// over the three members of a stable cluster, leave at most 3 live sessions
// (session.Config.MaxSessionsPerUser). The limit's lock is a record saved
// with Olric's lock-based compare-and-set; docs/account-sessions.md says
// what a failover can break.
func TestSessionLimit_concurrentLogins(t *testing.T) {
	members := startCluster(t)
	dmap := "limit-" + rand.Text()
	var nodes []store.Store
	for _, m := range members {
		nodes = append(nodes, newStore(t, olricstore.Config{Member: m, DMap: dmap}))
	}
	accounttest.ConcurrentLogins(t, nodes...)
}
