package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessionkit/sessionkit/store"
)

// sizes records the size of every batch a batcher runs.
type sizes struct {
	mu  sync.Mutex
	got []int
}

func (z *sizes) add(n int) {
	z.mu.Lock()
	z.got = append(z.got, n)
	z.mu.Unlock()
}

func (z *sizes) list() []int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]int(nil), z.got...)
}

func recordSizes[T interface{ base() *call }](b *batcher[T]) *sizes {
	z := new(sizes)
	one, many := b.one, b.many
	b.one = func(c T) { z.add(1); one(c) }
	b.many = func(batch []T) { z.add(len(batch)); many(batch) }
	return z
}

// waitFor polls cond until it holds, failing t after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func queued[T interface{ base() *call }](b *batcher[T]) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// waitLockWait waits until some backend waits for a lock: a call the test
// means to block has reached PostgreSQL and holds its batch open.
func waitLockWait(t *testing.T, s *Store) {
	t.Helper()
	waitFor(t, "a statement waiting for a lock", func() bool {
		var n int
		err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
}

// lockRow locks the row of key in a transaction of its own, which the
// returned function (also run at cleanup) rolls back.
func lockRow(t *testing.T, s *Store, key string) (unlock func()) {
	t.Helper()
	tx, err := s.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	unlock = func() { tx.Rollback(context.Background()) }
	t.Cleanup(unlock)
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM `+s.table+` WHERE key = $1 FOR UPDATE`, []byte(key)); err != nil {
		t.Fatal(err)
	}
	return unlock
}

// holdSaves keeps the only save batch of s (MaxBatches 1) busy: a Save of
// the row "block", waiting for that row's lock. Saves made meanwhile
// queue. The returned function releases the lock and waits for that Save,
// failing t if it failed.
func holdSaves(t *testing.T, s *Store) (release func()) {
	t.Helper()
	exp := s.now().Add(time.Hour)
	v, err := s.Save(t.Context(), "block", store.Record{Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	unlock := lockRow(t, s, "block")
	blocked := make(chan error, 1)
	go func() { _, err := s.Save(t.Context(), "block", store.Record{Version: v, Expires: exp}); blocked <- err }()
	waitLockWait(t, s)
	return func() {
		t.Helper()
		unlock()
		if err := <-blocked; err != nil {
			t.Fatalf("the Save holding the batch: %v", err)
		}
	}
}

type saveResult struct {
	key     string
	version uint64
	err     error
}

// TestStore_batchedSaves holds the only save batch open on a row lock,
// queues Saves behind it, and checks that they go as one batch, committed
// in one transaction (their rows share one xmin), with each its own outcome:
// new records saved, a stale version and the loser of two inserts of one
// key refused with ErrConflict, a replaced record given a new version.
func TestStore_batchedSaves(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	s := newStore(t, pool, Config{Now: clk.Now, CleanupInterval: -1, MaxBatches: 1})
	ctx := t.Context()
	exp := clk.Now().Add(time.Hour)
	rec := func(data string, version uint64) store.Record {
		return store.Record{Data: []byte(data), Version: version, Expires: exp, UserID: "u"}
	}
	vOld, err := s.Save(ctx, "old", rec("o", 0))
	if err != nil {
		t.Fatal(err)
	}
	release := holdSaves(t, s)
	z := recordSizes(s.saves)

	calls := []struct {
		key string
		rec store.Record
	}{
		{"new-3", rec("n3", 0)},
		{"new-1", rec("n1", 0)},
		{"twice", rec("t1", 0)},
		{"twice", rec("t2", 0)},
		{"old", rec("o2", vOld)},
		{"old", rec("o3", vOld)}, // the same version: at most one of the two wins
		{"new-2", rec("n2", 0)},
	}
	results := make(chan saveResult, len(calls))
	for _, c := range calls {
		go func() {
			v, err := s.Save(ctx, c.key, c.rec)
			results <- saveResult{c.key, v, err}
		}()
	}
	waitFor(t, "the saves to queue", func() bool { return queued(s.saves) == len(calls) })
	release()
	won := map[string]int{}
	for range calls {
		r := <-results
		switch {
		case r.err == nil:
			won[r.key]++
			if r.version == 0 {
				t.Errorf("Save(%s): version 0", r.key)
			}
		case !errors.Is(r.err, store.ErrConflict):
			t.Errorf("Save(%s): %v", r.key, r.err)
		}
	}
	for key, want := range map[string]int{"new-1": 1, "new-2": 1, "new-3": 1, "twice": 1, "old": 1} {
		if won[key] != want {
			t.Errorf("Save(%s): %d succeeded; want %d", key, won[key], want)
		}
	}
	if got := z.list(); len(got) != 1 || got[0] != len(calls) {
		t.Errorf("batch sizes after the one holding the batch: %v; want [%d]", got, len(calls))
	}
	var xmins int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT xmin::text) FROM `+s.table+` WHERE key <> 'block'`).Scan(&xmins); err != nil {
		t.Fatal(err)
	}
	// "old" was rewritten by the batch, so every row but "block" has the
	// batch's transaction as its xmin.
	if xmins != 1 {
		t.Errorf("the batched rows were written by %d transactions; want 1", xmins)
	}
	for key, data := range map[string][]string{"new-1": {"n1"}, "twice": {"t1", "t2"}, "old": {"o2", "o3"}} {
		r, err := s.Load(ctx, key)
		if err != nil {
			t.Fatalf("Load(%s): %v", key, err)
		}
		if string(r.Data) != data[0] && string(r.Data) != data[len(data)-1] {
			t.Errorf("Load(%s): data %q; want one of %q", key, r.Data, data)
		}
	}
}

// TestStore_batchRefusedStatement makes PostgreSQL refuse one statement of
// a batch (a trigger raises an error for one key), which rolls the batch
// back, and checks that only that call fails, with PostgreSQL's error, and
// that the others are saved.
func TestStore_batchRefusedStatement(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	s := newStore(t, pool, Config{Now: clk.Now, CleanupInterval: -1, MaxBatches: 1})
	ctx := t.Context()
	fn := s.table[:len(s.table)-1] + `_poison"`
	_, err := pool.Exec(ctx, `CREATE FUNCTION `+fn+`() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.key = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON `+s.table+` FOR EACH ROW EXECUTE FUNCTION `+fn+`()`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Exec(context.Background(), `DROP FUNCTION IF EXISTS `+fn+`() CASCADE`) })
	exp := clk.Now().Add(time.Hour)
	release := holdSaves(t, s)

	keys := []string{"a", "poison", "z"}
	results := make(chan saveResult, len(keys))
	for _, k := range keys {
		go func() {
			v, err := s.Save(ctx, k, store.Record{Data: []byte(k), Expires: exp})
			results <- saveResult{k, v, err}
		}()
	}
	waitFor(t, "the saves to queue", func() bool { return queued(s.saves) == len(keys) })
	release()
	for range keys {
		r := <-results
		var pgErr *pgconn.PgError
		if r.key == "poison" {
			if !errors.As(r.err, &pgErr) || pgErr.Message != "poison refused" {
				t.Errorf("Save(poison): got err %v; want PostgreSQL's \"poison refused\"", r.err)
			}
			continue
		}
		if r.err != nil {
			t.Errorf("Save(%s) beside a refused statement: %v", r.key, r.err)
		} else if got, err := s.Load(ctx, r.key); err != nil || got.Version != r.version {
			t.Errorf("Load(%s): version %d, err %v; want %d", r.key, got.Version, err, r.version)
		}
	}
}

// TestStore_batchedLoads holds the only load batch open on a table lock,
// queues Loads behind it, and checks that they go as one batch with each
// its own result: a record, ErrNotFound for a missing or expired key, and
// for a key asked twice two records that share no memory.
func TestStore_batchedLoads(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	s := newStore(t, pool, Config{Now: clk.Now, CleanupInterval: -1, MaxBatches: 1})
	z := recordSizes(s.loads)
	ctx := t.Context()
	want := map[string]store.Record{}
	for i := range 4 {
		k := fmt.Sprintf("k%d", i)
		r := store.Record{Data: []byte("data of " + k), Expires: clk.Now().Add(time.Hour).Truncate(time.Microsecond), UserID: "u" + k}
		if i == 3 {
			r.Expires = clk.Now().Add(time.Minute)
		}
		v, err := s.Save(ctx, k, r)
		if err != nil {
			t.Fatal(err)
		}
		r.Version = v
		want[k] = r
	}
	clk.Advance(2 * time.Minute) // k3 expires
	delete(want, "k3")

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `LOCK TABLE `+s.table+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	go s.Load(ctx, "k0")
	waitLockWait(t, s)

	keys := []string{"k1", "k2", "k1", "k3", "missing", "k0"}
	type result struct {
		i   int
		rec store.Record
		err error
	}
	results := make(chan result, len(keys))
	for i, k := range keys {
		go func() {
			r, err := s.Load(ctx, k)
			results <- result{i, r, err}
		}()
	}
	waitFor(t, "the loads to queue", func() bool { return queued(s.loads) == len(keys) })
	tx.Rollback(ctx)
	got := make([]store.Record, len(keys))
	for range keys {
		r := <-results
		k := keys[r.i]
		w, ok := want[k]
		switch {
		case !ok && !errors.Is(r.err, store.ErrNotFound):
			t.Errorf("Load(%s): got err %v; want %v", k, r.err, store.ErrNotFound)
		case ok && r.err != nil:
			t.Errorf("Load(%s): %v", k, r.err)
		case ok && (string(r.rec.Data) != string(w.Data) || r.rec.Version != w.Version || r.rec.UserID != w.UserID || !r.rec.Expires.Equal(w.Expires)):
			t.Errorf("Load(%s): got %+v; want %+v", k, r.rec, w)
		}
		got[r.i] = r.rec
	}
	if len(got[0].Data) > 0 && len(got[2].Data) > 0 {
		got[0].Data[0] = '!'
		if got[2].Data[0] == '!' {
			t.Error("two Loads of one key in one batch share their data")
		}
	}
	// The Load holding the batch open ran alone, outside the queue.
	if sz := z.list(); len(sz) != 1 || sz[0] != len(keys) {
		t.Errorf("batch sizes after the one holding the batch: %v; want [%d]", sz, len(keys))
	}
}

// TestStore_batchCanceled checks that a call whose context ends while it
// waits for a batch returns at once with the context's error, and that a
// Save whose caller has gone by the time its batch starts is not sent.
func TestStore_batchCanceled(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	s := newStore(t, pool, Config{Now: clk.Now, CleanupInterval: -1, MaxBatches: 1})
	ctx := t.Context()
	exp := clk.Now().Add(time.Hour)
	release := holdSaves(t, s)

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := s.Save(cctx, "gone", store.Record{Expires: exp}); done <- err }()
	waitFor(t, "the save to queue", func() bool { return queued(s.saves) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Save with its context canceled in the queue: got err %v; want %v", err, context.Canceled)
	}
	release()
	// The next Save runs after the batch that skipped "gone".
	if _, err := s.Save(ctx, "after", store.Record{Expires: exp}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batches to end", func() bool {
		s.saves.mu.Lock()
		defer s.saves.mu.Unlock()
		return s.saves.running == 0
	})
	if _, err := s.Load(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load of a Save canceled before its batch: got err %v; want %v", err, store.ErrNotFound)
	}
}

// TestStore_batchLockOrder checks that a batch of Saves locks its rows in
// key order, whatever the order the calls came in: with the row of its
// first key locked elsewhere, the batch waits for it holding no other row.
func TestStore_batchLockOrder(t *testing.T) {
	pool := testPool(t, nil)
	s := newStore(t, pool, Config{CleanupInterval: -1, MaxBatches: 1})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	versions := map[string]uint64{}
	for _, k := range []string{"a", "z"} {
		v, err := s.Save(ctx, k, store.Record{Expires: exp})
		if err != nil {
			t.Fatal(err)
		}
		versions[k] = v
	}
	unlockA := lockRow(t, s, "a")
	release := holdSaves(t, s)
	results := make(chan error, 2)
	for i, k := range []string{"z", "a"} { // z first in the queue
		go func() { _, err := s.Save(ctx, k, store.Record{Version: versions[k], Expires: exp}); results <- err }()
		waitFor(t, "the save to queue", func() bool { return queued(s.saves) == i+1 })
	}
	release()
	waitLockWait(t, s) // the batch of z and a, on a's row
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT 1 FROM `+s.table+` WHERE key = 'z' FOR UPDATE NOWAIT`)
		return err
	})
	if err != nil {
		t.Errorf("locking \"z\" while the batch waits for \"a\": %v; want it free", err)
	}
	unlockA()
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("Save: %v", err)
		}
	}
}

// TestStore_DeleteUser_lockOrder checks that DeleteUser locks the user's
// rows in key order, as a batch of Saves does, so that the two never
// deadlock: with the row of the user's first key locked elsewhere,
// DeleteUser waits for it holding no other row, not even the one it finds
// first (the row written first, first in the table and in the user index).
func TestStore_DeleteUser_lockOrder(t *testing.T) {
	pool := testPool(t, nil)
	s := newStore(t, pool, Config{CleanupInterval: -1})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	for _, k := range []string{"z", "m", "a"} {
		if _, err := s.Save(ctx, k, store.Record{Expires: exp, UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	unlock := lockRow(t, s, "a")
	deleted := make(chan int, 1)
	go func() {
		n, err := s.DeleteUser(ctx, "u")
		if err != nil {
			t.Errorf("DeleteUser: %v", err)
		}
		deleted <- n
	}()
	waitLockWait(t, s)
	for _, k := range []string{"z", "m"} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT 1 FROM `+s.table+` WHERE key = $1 FOR UPDATE NOWAIT`, []byte(k))
			return err
		})
		if err != nil {
			t.Errorf("locking %q while DeleteUser waits for \"a\": %v; want it free", k, err)
		}
	}
	unlock()
	if n := <-deleted; n != 3 {
		t.Errorf("DeleteUser: %d deleted; want 3", n)
	}
}

// TestStore_unbatched checks that MaxBatches < 0, and a negative Timeout,
// turn batching off.
func TestStore_unbatched(t *testing.T) {
	pool := testPool(t, nil)
	for _, cfg := range []Config{{MaxBatches: -1}, {Timeout: -1}} {
		cfg.CleanupInterval = -1
		s := newStore(t, pool, cfg)
		if s.loads != nil || s.saves != nil {
			t.Errorf("%+v: batching is on", cfg)
		}
	}
	if s := newStore(t, pool, Config{CleanupInterval: -1}); s.loads == nil || s.saves == nil || s.saves.max != DefaultMaxBatches {
		t.Error("default config: batching is off")
	}
}
