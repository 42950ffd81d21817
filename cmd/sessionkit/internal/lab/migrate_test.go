package lab_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/lab"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

// TestMigrate_noLoss switches strategies in the middle of short runs, as
// docs/migration.md says: from memory to Redis (new nodes, the memory
// nodes drained), from tokens to Redis and from Redis to PostgreSQL
// (every node at once). No session and no acknowledged update is lost.
func TestMigrate_noLoss(t *testing.T) {
	redis := "redis://" + testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379") + "/0"
	rep, err := lab.Run(t.Context(), lab.Config{
		Users:    20,
		Duration: 3 * time.Second,
		RedisURL: redis,
		Migrate:  []string{"memory:redis", "token:redis", "redis:postgres"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("\n%s", table.String())
	if len(rep.Results) != 3 {
		t.Fatalf("%d rows; want one per migration", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Skipped != "" {
			testenv.Missing(t, r.Strategy+" skipped: "+r.Skipped)
			continue
		}
		if len(r.Events) != 1 || strings.Contains(r.Events[0].Label, "failed") {
			t.Errorf("%s: events %v; want the switch", r.Strategy, r.Events)
		}
		if r.Requests < 100 || r.SessionsLost != 0 || r.UpdatesLost != 0 || r.Errors != 0 {
			t.Errorf("%s: %d requests, %d sessions lost, %d updates lost of %d, %d errors; want none lost",
				r.Strategy, r.Requests, r.SessionsLost, r.UpdatesLost, r.UpdatesAcked, r.Errors)
		}
	}
}

func TestMigrate_badConfig(t *testing.T) {
	for _, m := range []string{"token", "token:bogus", "redis:redis", "redis:memory"} {
		if err := lab.Check(lab.Config{Migrate: []string{m}}); err == nil {
			t.Errorf("Migrate %q accepted", m)
		}
	}
}
