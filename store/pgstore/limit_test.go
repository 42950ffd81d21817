package pgstore

import (
	"testing"

	"github.com/sessionkit/sessionkit/internal/accounttest"
	"github.com/sessionkit/sessionkit/store"
)

// TestSessionLimit_concurrentLogins: 32 logins of one user at once on three
// instances, each with its own connection pool, leave at most 3 live
// sessions (session.Config.MaxSessionsPerUser).
func TestSessionLimit_concurrentLogins(t *testing.T) {
	table := newTable(t, testPool(t, nil))
	var nodes []store.Store
	for range 3 {
		nodes = append(nodes, newStore(t, testPool(t, nil), Config{Table: table}))
	}
	accounttest.ConcurrentLogins(t, nodes...)
}
