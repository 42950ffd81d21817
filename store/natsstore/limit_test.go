package natsstore_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/accounttest"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store"
)

// TestSessionLimit_concurrentLogins: 32 logins of one user at once on three
// instances, each with its own connection to the NATS server, leave at most
// 3 live sessions (session.Config.MaxSessionsPerUser).
func TestSessionLimit_concurrentLogins(t *testing.T) {
	url := "nats://" + testenv.TCPAddr(t, "SESSIONKIT_NATS_ADDR", "127.0.0.1:4222")
	bucket := "limit_" + rand.Text()
	t.Cleanup(func() { deleteBucket(t, url, bucket) })
	var nodes []store.Store
	for range 3 {
		s := newStore(t, url, bucket, 1, time.Now)
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	accounttest.ConcurrentLogins(t, nodes...)
}
