package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionkit/sessionkit/store"
)

// fill inserts n rows with keys prefix0..prefix(n-1), the i-th expiring at
// first+i*step, bound to user.
func fill(t *testing.T, pool *pgxpool.Pool, s *Store, prefix string, n int, first time.Time, step time.Duration, user string) {
	t.Helper()
	var uid []byte
	if user != "" {
		uid = []byte(user)
	}
	_, err := pool.Exec(t.Context(), `INSERT INTO `+s.table+` (key, data, user_id, expires_at)
		SELECT convert_to($1 || i, 'UTF8'), '\x00', $2, $3::timestamptz + i * $4::interval FROM generate_series(0, $5 - 1) AS i`,
		prefix, uid, first, step, n)
	if err != nil {
		t.Fatalf("fill %s: %v", prefix, err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, s *Store, where string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+s.table+` WHERE `+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStore_sweep_batches sweeps 1200 expired rows in batches of 500 by the
// injected clock, leaving the live rows alone.
func TestStore_sweep_batches(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	s := newStore(t, pool, Config{Now: clk.Now, CleanupInterval: -1, CleanupBatch: 500})
	ctx := t.Context()
	now := clk.Now()
	fill(t, pool, s, "expired/", 1200, now.Add(time.Second), time.Millisecond, "alice")
	fill(t, pool, s, "live/", 300, now.Add(time.Hour), time.Millisecond, "")
	live := store.Record{Data: []byte("live"), Expires: now.Add(2 * time.Hour), UserID: "alice"}
	v, err := s.Save(ctx, "live/saved", live)
	if err != nil {
		t.Fatal(err)
	}

	// Nothing has expired yet.
	if n, b, err := s.sweep(ctx); n != 0 || b != 1 || err != nil {
		t.Fatalf("sweep before expiry: got %d deleted in %d batches, err %v; want 0 in 1, nil", n, b, err)
	}
	clk.Advance(10 * time.Second) // all of expired/ are past, by the store's clock only
	n, b, err := s.sweep(ctx)
	if n != 1200 || b != 3 || err != nil {
		t.Errorf("sweep: got %d deleted in %d batches, err %v; want 1200 in 3, nil", n, b, err)
	}
	if got := count(t, pool, s, "true"); got != 301 {
		t.Errorf("rows after sweep: got %d; want 301", got)
	}
	if got := count(t, pool, s, `convert_from(key, 'UTF8') LIKE 'live/%'`); got != 301 { // live/
		t.Errorf("live rows after sweep: got %d; want 301", got)
	}
	rec, err := s.Load(ctx, "live/saved")
	if err != nil || rec.Version != v || string(rec.Data) != "live" {
		t.Errorf(`Load("live/saved") after sweep: got %+v, err %v; want version %d, data "live"`, rec, err, v)
	}
	if _, err := s.Load(ctx, "live/0"); err != nil {
		t.Errorf(`Load("live/0") after sweep: got err %v; want nil`, err)
	}
	if n, b, err := s.sweep(ctx); n != 0 || b != 1 || err != nil {
		t.Errorf("second sweep: got %d deleted in %d batches, err %v; want 0 in 1, nil", n, b, err)
	}

	// An exact multiple of the batch takes one more, empty, statement.
	fill(t, pool, s, "again/", 1000, clk.Now().Add(-time.Minute), time.Millisecond, "")
	if n, b, err := s.sweep(ctx); n != 1000 || b != 3 || err != nil {
		t.Errorf("sweep of 1000: got %d deleted in %d batches, err %v; want 1000 in 3, nil", n, b, err)
	}
}

// TestStore_sweep_skipsLocked checks that the sweep neither waits for nor
// deletes a row another transaction holds locked.
func TestStore_sweep_skipsLocked(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	s := newStore(t, pool, Config{Now: clk.Now, CleanupInterval: -1, CleanupBatch: 10})
	ctx := t.Context()
	fill(t, pool, s, "expired/", 25, clk.Now().Add(-time.Hour), time.Second, "")

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+s.table+` WHERE key = $1 FOR UPDATE`, []byte("expired/0")); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, _, err := s.sweep(sctx)
	if n != 24 || err != nil {
		t.Errorf("sweep with one expired row locked: got %d deleted, err %v; want 24, nil", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _, err := s.sweep(ctx); n != 1 || err != nil {
		t.Errorf("sweep after the lock is released: got %d deleted, err %v; want 1, nil", n, err)
	}
}

// TestStore_sweep_background checks that the background sweep runs by the
// store's clock and ends with Close.
func TestStore_sweep_background(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	table := newTable(t, pool)
	s, err := New(t.Context(), Config{Pool: pool, Table: table, Now: clk.Now, CleanupInterval: 5 * time.Millisecond, CleanupBatch: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fill(t, pool, s, "expired/", 50, clk.Now().Add(time.Minute), time.Millisecond, "")
	fill(t, pool, s, "live/", 5, clk.Now().Add(time.Hour), time.Millisecond, "")
	clk.Advance(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for count(t, pool, s, "true") != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("rows 5 s after expiry with a 5 ms sweep: got %d; want 5", count(t, pool, s, "true"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v; want it prompt", d)
	}
	clk.Advance(2 * time.Hour)
	time.Sleep(30 * time.Millisecond)
	if got := count(t, pool, s, "true"); got != 5 {
		t.Errorf("rows after Close and expiry: got %d; want 5 (no sweep after Close)", got)
	}
}

// TestStore_sweep_canceled checks that a sweep stops on its context.
func TestStore_sweep_canceled(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	s := newStore(t, pool, Config{Now: clk.Now, CleanupInterval: -1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := s.sweep(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("sweep with a canceled context: got err %v; want %v", err, context.Canceled)
	}
}
