package redisstore_test

import (
	"testing"

	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/internal/accounttest"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// TestSessionLimit_concurrentLogins: 32 logins of one user at once on three
// instances, each with its own Redis client, leave at most 3 live sessions
// (session.Config.MaxSessionsPerUser).
func TestSessionLimit_concurrentLogins(t *testing.T) {
	prefix := uniquePrefix()
	raw, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisAddr(t)}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dropPrefix(t, raw, prefix); raw.Close() })
	var nodes []store.Store
	for range 3 {
		nodes = append(nodes, newStore(t, redisstore.Config{Addrs: []string{redisAddr(t)}, KeyPrefix: prefix}))
	}
	accounttest.ConcurrentLogins(t, nodes...)
}
