package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessionkit/sessionkit/store"
)

// maxBatchSize is the most calls one batch carries.
const maxBatchSize = 128

// batcher groups concurrent calls of one kind so that they share a round
// trip and, for writes, a commit. There is no timer: a call that finds
// fewer than max batches running starts one at once, carrying every call
// queued by then (up to maxBatchSize), and runs it on its own goroutine; a
// call that finds max batches running waits in the queue, and the first
// batch to end starts the next one with the whole queue. A lone call is
// therefore never delayed, and under load a batch carries the calls that
// arrived during the previous one. Calls whose caller has given up by the
// time their batch starts are completed with their context's error and not
// sent. The zero batcher is not usable; one, many and max must be set. Safe
// for concurrent use.
type batcher[T interface{ base() *call }] struct {
	one  func(T)   // runs a lone call, under its caller's context, and completes it
	many func([]T) // runs several calls as one batch and completes them
	max  int       // batches running at once, > 0

	mu      sync.Mutex
	queue   []T
	running int
}

// submit queues c and, if fewer than max batches are running, runs a batch
// holding c before it returns. Either way c is completed, now or later;
// the caller waits for that on its own.
func (b *batcher[T]) submit(c T) {
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.running >= b.max {
		b.mu.Unlock()
		return
	}
	b.running++
	batch := b.takeLocked()
	b.mu.Unlock()
	b.exec(batch)
	b.next()
}

// alone reports whether a call may run at once on its own, without being
// queued: fewer than max batches are running, so none waits. It then
// takes a batch's turn, which the caller ends with next once the call is
// done. This spares a lone call the queue's allocations.
func (b *batcher[T]) alone() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running >= b.max {
		return false
	}
	b.running++
	return true
}

// next runs, on a new goroutine, a batch of the calls that queued while a
// batch ran, or ends that batch's turn if none did.
func (b *batcher[T]) next() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.running--
		b.mu.Unlock()
		return
	}
	batch := b.takeLocked()
	b.mu.Unlock()
	go func() {
		b.exec(batch)
		b.next()
	}()
}

// exec runs a batch: the calls whose callers still wait, by one or many.
func (b *batcher[T]) exec(batch []T) {
	live := batch[:0]
	for _, c := range batch {
		if bc := c.base(); bc.ctx.Err() != nil {
			bc.err = bc.ctxErr()
			close(bc.done)
			continue
		}
		live = append(live, c)
	}
	switch len(live) {
	case 0:
	case 1:
		b.one(live[0])
	default:
		b.many(live)
	}
}

// takeLocked removes up to maxBatchSize calls from the front of the queue
// and returns them. b.mu must be held.
func (b *batcher[T]) takeLocked() []T {
	n := min(len(b.queue), maxBatchSize)
	batch := slices.Clone(b.queue[:n])
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:]) // drop the references to calls handed out
	b.queue = b.queue[:rest]
	return batch
}

// call is what every batched call carries: the caller's context, which
// the batch checks before it sends the call (a call whose caller has given
// up is not sent), the outcome, and done, closed once the outcome is set.
type call struct {
	ctx  context.Context
	op   string // "load" or "save", for errors
	key  string
	err  error
	done chan struct{}
}

func newCall(ctx context.Context, op, key string) call {
	return call{ctx: ctx, op: op, key: key, done: make(chan struct{})}
}

// ctxErr is the error of a call whose caller's context ended first.
func (c *call) ctxErr() error {
	return fmt.Errorf("pgstore: %s: %w", c.op, context.Cause(c.ctx))
}

// wait returns once the batch has completed c or the caller's context is
// done, whichever is first; in the second case the call may still be sent
// and take effect, as any statement whose answer the caller stops waiting
// for.
func (c *call) wait() error {
	select {
	case <-c.done:
		return c.err
	case <-c.ctx.Done():
		return c.ctxErr()
	}
}

// batchCtx returns the context a batch of several calls runs under: not any
// one caller's, since the batch serves them all, but the store's timeout.
func (s *Store) batchCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// loadCall is a Load waiting in a batch.
type loadCall struct {
	call
	rec   store.Record
	found bool
}

func (c *loadCall) base() *call { return &c.call }

// loadOneCall runs a lone Load as the one-key SELECT, under its caller's
// context.
func (s *Store) loadOneCall(c *loadCall) {
	c.rec, c.err = s.loadOne(c.ctx, c.key)
	close(c.done)
}

// loadMany runs several Loads in one SELECT ... WHERE key = ANY($1).
func (s *Store) loadMany(batch []*loadCall) {
	ctx, cancel := s.batchCtx()
	defer cancel()
	keys := make([][]byte, len(batch))
	first := make(map[string]int, len(batch)) // a key's first call
	for i, c := range batch {
		keys[i] = []byte(c.key)
		if _, ok := first[c.key]; !ok {
			first[c.key] = i
		}
	}
	err := s.scanLoads(ctx, keys, batch, first)
	for i, c := range batch {
		switch j := first[c.key]; {
		case err != nil:
			c.err = fmt.Errorf("pgstore: load: %w", err)
		case j != i: // the same key twice: a copy of the first one's record
			c.rec, c.found, c.err = batch[j].rec, batch[j].found, batch[j].err
			c.rec.Data = slices.Clone(c.rec.Data)
		}
		if c.err == nil && !c.found {
			c.err = fmt.Errorf("pgstore: load: %w", store.ErrNotFound)
		}
	}
	// Only now, once no record is read again: a caller may change its
	// record's data as soon as it has it.
	for _, c := range batch {
		close(c.done)
	}
}

// scanLoads runs the many-key SELECT and sets the record of the first call
// of each key it returns.
func (s *Store) scanLoads(ctx context.Context, keys [][]byte, batch []*loadCall, first map[string]int) error {
	rows, err := s.pool.Query(ctx, s.q.loadMany, keys, s.now())
	if err != nil {
		return err
	}
	var (
		key     []byte
		data    []byte
		version int64
		user    []byte
		expires time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &data, &version, &user, &expires}, func() error {
		i, ok := first[string(key)]
		if !ok {
			return errors.New("a row for a key not asked for")
		}
		c := batch[i]
		c.rec = store.Record{Data: data, Version: uint64(version), UserID: string(user), Expires: expires.UTC()}
		c.found = true
		data = nil // the next row scans into a new slice
		return nil
	})
	return err
}

// saveCall is a Save waiting in a batch.
type saveCall struct {
	call
	rec     store.Record
	version uint64 // the new version, once saved
}

func (c *saveCall) base() *call { return &c.call }

// saveOneCall runs a lone Save as its statement, under its caller's
// context.
func (s *Store) saveOneCall(c *saveCall) {
	c.version, c.err = s.saveOne(c.ctx, c.key, c.rec)
	close(c.done)
}

// saveMany runs several Saves as one pipeline of their statements, in key
// order, which PostgreSQL runs as one implicit transaction with one commit.
// Each statement is the same compare-and-set as alone, and one that matches
// no row (a conflict) changes nothing and fails nothing else. Sorting by
// key makes every batch lock its rows in the same order, so that two
// batches never deadlock. If PostgreSQL refuses a statement, which rolls
// the whole batch back, each call runs again alone, so that it fails only
// its own caller.
func (s *Store) saveMany(batch []*saveCall) {
	slices.SortStableFunc(batch, func(a, b *saveCall) int { return strings.Compare(a.key, b.key) })
	err := s.sendSaves(batch)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		for _, c := range batch {
			c.version, c.err = s.saveOne(c.ctx, c.key, c.rec)
		}
	} else if err != nil {
		for _, c := range batch {
			c.err = fmt.Errorf("pgstore: save: %w", err)
		}
	}
	for _, c := range batch {
		close(c.done)
	}
}

// sendSaves runs the statements of batch in one pipeline and sets each
// call's outcome. An error means nothing was saved (or, for an error of
// the connection, that the outcome is unknown), whatever the outcomes set.
func (s *Store) sendSaves(batch []*saveCall) error {
	ctx, cancel := s.batchCtx()
	defer cancel()
	now := s.now()
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(batch))}
	for _, c := range batch {
		sql, args := s.saveStatement(c.key, c.rec, now)
		b.Queue(sql, args...)
	}
	br := s.pool.SendBatch(ctx, b)
	var first error
	for _, c := range batch {
		var version int64
		err := br.QueryRow().Scan(&version)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			c.err = fmt.Errorf("pgstore: save: %w", store.ErrConflict)
		case err != nil:
			if first == nil {
				first = err
			}
		default:
			c.version = uint64(version)
		}
	}
	// Close reads the commit's outcome.
	if err := br.Close(); first == nil {
		first = err
	}
	return first
}

// checkSave reports whether rec can be saved; a version above MaxInt64,
// which no row holds, is a conflict.
func checkSave(rec store.Record) error {
	if rec.Expires.IsZero() {
		return errZeroExpires
	}
	if rec.Version > math.MaxInt64 {
		return fmt.Errorf("pgstore: save: %w", store.ErrConflict)
	}
	return nil
}

// saveStatement returns the compare-and-set statement that saves rec under
// key, with its arguments.
func (s *Store) saveStatement(key string, rec store.Record, now any) (string, []any) {
	data := rec.Data
	if data == nil {
		data = []byte{} // nil would be NULL
	}
	var user []byte // nil: NULL, unbound
	if rec.UserID != "" {
		user = []byte(rec.UserID)
	}
	if rec.Version == 0 {
		return s.q.insert, []any{[]byte(key), data, user, rec.Expires, now}
	}
	return s.q.update, []any{[]byte(key), data, user, rec.Expires, int64(rec.Version), now}
}
