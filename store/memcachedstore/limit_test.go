package memcachedstore_test

import (
	"testing"

	"github.com/sessionkit/sessionkit/internal/accounttest"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memcachedstore"
)

// TestSessionLimit_concurrentLogins: 32 logins of one user at once on three
// instances, each with its own client of the shared memcached, leave at
// most 3 live sessions (session.Config.MaxSessionsPerUser). The limit's
// lock is an item created with add.
func TestSessionLimit_concurrentLogins(t *testing.T) {
	addr, prefix := memcachedAddr(t), uniquePrefix()
	var nodes []store.Store
	for range 3 {
		nodes = append(nodes, newStore(t, memcachedstore.Config{Servers: []string{addr}, KeyPrefix: prefix}))
	}
	accounttest.ConcurrentLogins(t, nodes...)
}
