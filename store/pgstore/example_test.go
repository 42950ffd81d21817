package pgstore_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/pgstore"
)

// The application owns the pool; the store runs its queries on it. Migrate
// is an explicit step, for example a command of its own, run before the
// application starts. (This example needs a server, so it is compiled but
// not run.)
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db.internal:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close() // after the store's Close

	if err := pgstore.Migrate(ctx, pool, "sessions"); err != nil {
		log.Fatal(err)
	}
	s, err := pgstore.New(ctx, pgstore.Config{Pool: pool, Table: "sessions"})
	if err != nil {
		log.Fatal(err) // wraps pgstore.ErrSchema if Migrate has not run
	}
	defer s.Close()

	v, err := s.Save(ctx, "session-key", store.Record{
		Data:    []byte(`{"cart":3}`),
		Expires: time.Now().Add(30 * time.Minute),
		UserID:  "alice",
	})
	if err != nil {
		log.Fatal(err)
	}
	// Extend the session if nobody has changed it since.
	if err := s.Touch(ctx, "session-key", v, time.Now().Add(time.Hour)); err != nil {
		log.Fatal(err)
	}
}

// Open makes the pool from a connection string; Close then closes it too.
func ExampleOpen() {
	ctx := context.Background()
	s, err := pgstore.Open(ctx, "postgres://app@db.internal:5432/app?pool_max_conns=20", pgstore.Config{
		CleanupInterval: 5 * time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
}
