// Package migrate moves sessions from one store to another while an app
// keeps serving them, so that changing stores (Redis to PostgreSQL,
// PostgreSQL to NATS, ...) logs nobody out.
//
// New(from, to) returns a store.Store for the app's session.Manager:
//
//   - Load reads the new store; on a miss it reads the old one and copies
//     the record into the new store with a compare-and-set that requires
//     the key to be absent, so that two instances copying the same session
//     at once create it once (the loser reads the winner's copy). The copy
//     gets a version of the new store; the old record stays, for instances
//     not yet moved to this wrapper.
//   - Save and Touch go to the new store only.
//   - Delete deletes from the old store first, then from the new one, and a
//     copy made while a delete was running is undone (Load checks the old
//     record again after copying it): a destroyed session never comes back
//     from the old store.
//   - ListUser answers from both stores (the new store's record wins for a
//     key in both), DeleteUser deletes from both, old first.
//
// The wrapper implements store.Toucher when the new store does, and
// store.UserIndex when both do. Stats counts the copies: once it stops
// growing, and at the latest once the longest session lifetime has passed
// since every instance runs the wrapper, no session lives only in the old
// store, and the old store can be switched off (docs/migration.md).
//
// During a rolling deploy, instances still on the old store alone keep
// reading and writing it: a session they change after this wrapper copied
// it is not copied again, so the instances' changes diverge. Deploy the
// wrapper to every instance before users' sessions move between old-only
// and migrating instances, or route each user to one kind (sticky
// sessions), as docs/migration.md describes.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Stats are a migrating store's counts since New.
type Stats struct {
	// Copied is how many sessions Load copied from the old store.
	Copied int64
	// Undone is how many of those copies were deleted again because the
	// session was deleted from the old store while it was being copied.
	Undone int64
}

// Store is a store.Store that reads through to an old store and writes to
// a new one (see the package documentation). Safe for concurrent use.
type Store struct {
	// Scanner, if set before the store is used, lists the old store's keys
	// for Remaining instead of the old store itself: for an old store
	// reached through a wrapper (a circuit breaker) that hides its
	// ScanKeys.
	Scanner KeyScanner

	from, to store.Store
	copied   atomic.Int64
	undone   atomic.Int64
}

// New returns a store that moves sessions from the store from to the store
// to. Its Close closes both.
func New(from, to store.Store) (store.Store, *Store) {
	s := &Store{from: from, to: to}
	t, isT := to.(store.Toucher)
	fu, isFU := from.(store.UserIndex)
	tu, isTU := to.(store.UserIndex)
	mt := toucher{t}
	mu := index{s, fu, tu}
	switch {
	case isT && isFU && isTU:
		return struct {
			store.Store
			store.Toucher
			store.UserIndex
		}{s, mt, mu}, s
	case isT:
		return struct {
			store.Store
			store.Toucher
		}{s, mt}, s
	case isFU && isTU:
		return struct {
			store.Store
			store.UserIndex
		}{s, mu}, s
	}
	return s, s
}

// KeyScanner is implemented by stores that can list their live keys
// (memstore, redisstore on a standalone server or a Sentinel master,
// pgstore): Remaining needs it of the old store.
type KeyScanner interface {
	// ScanKeys calls fn with the key of every live record, in no order,
	// until fn returns false.
	ScanKeys(ctx context.Context, fn func(key string) bool) error
}

// Remaining returns how many sessions live only in the old store: not moved
// yet. When it reaches 0, and stays there, the old store can go. It reads
// every key of the old store and looks up each in the new one (and again in
// the old one, so that a record that ended meanwhile does not count), so
// its cost grows with the old store: an operator's query, run every minute
// or so, not per request. It returns an error wrapping store.ErrUnsupported
// if the old store is not a KeyScanner.
func (s *Store) Remaining(ctx context.Context) (int, error) {
	sc, ok := s.from.(KeyScanner)
	if s.Scanner != nil {
		sc, ok = s.Scanner, true
	}
	if !ok {
		return 0, fmt.Errorf("migrate: counting the sessions left in the old store (%T): %w", s.from, store.ErrUnsupported)
	}
	n := 0
	var ferr error
	err := sc.ScanKeys(ctx, func(key string) bool {
		_, err := s.to.Load(ctx, key)
		if err == nil {
			return true
		}
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalidKey) {
			ferr = fmt.Errorf("migrate: look a session up in the new store: %w", err)
			return false
		}
		if _, err := s.from.Load(ctx, key); err == nil {
			n++
		}
		return true
	})
	if ferr != nil {
		return n, ferr
	}
	if err != nil {
		return n, fmt.Errorf("migrate: scan the old store: %w", err)
	}
	return n, nil
}

// Stats returns the counts since New.
func (s *Store) Stats() Stats { return Stats{Copied: s.copied.Load(), Undone: s.undone.Load()} }

// Load implements store.Store.
func (s *Store) Load(ctx context.Context, key string) (store.Record, error) {
	rec, err := s.to.Load(ctx, key)
	if !errors.Is(err, store.ErrNotFound) {
		return rec, err
	}
	old, err := s.from.Load(ctx, key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Record{}, err
		}
		return store.Record{}, fmt.Errorf("migrate: load from the old store: %w", err)
	}
	v, err := s.to.Save(ctx, key, store.Record{Data: old.Data, Expires: old.Expires, UserID: old.UserID})
	switch {
	case errors.Is(err, store.ErrConflict):
		// Another instance copied it first (or the key was written anew):
		// the new store's record is the session.
		return s.to.Load(ctx, key)
	case err != nil:
		return store.Record{}, fmt.Errorf("migrate: copy into the new store: %w", err)
	}
	// A Delete that ran while this copy was made removed the old record
	// first: if it is gone now, the copy must go too.
	if _, err := s.from.Load(ctx, key); errors.Is(err, store.ErrNotFound) {
		// Unconditionally: a request may have saved over the copy already,
		// and the session it saved was destroyed all the same.
		if derr := s.to.Delete(ctx, key, 0); derr != nil {
			return store.Record{}, fmt.Errorf("migrate: undo the copy of a session deleted meanwhile: %w", derr)
		}
		s.undone.Add(1)
		return store.Record{}, store.ErrNotFound
	} else if err != nil {
		return store.Record{}, fmt.Errorf("migrate: check the old store after a copy: %w", err)
	}
	s.copied.Add(1)
	old.Version = v
	return old, nil
}

// Save implements store.Store: the new store only.
func (s *Store) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	return s.to.Save(ctx, key, rec)
}

// Delete implements store.Store: the old store first (unconditionally),
// then the new one (with version).
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if err := s.from.Delete(ctx, key, 0); err != nil {
		return fmt.Errorf("migrate: delete from the old store: %w", err)
	}
	return s.to.Delete(ctx, key, version)
}

// Close closes both stores.
func (s *Store) Close() error {
	return errors.Join(s.to.Close(), s.from.Close())
}

type toucher struct{ t store.Toucher }

// Touch implements store.Toucher: the new store only (Load has copied the
// session there).
func (t toucher) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	return t.t.Touch(ctx, key, version, expires)
}

type index struct {
	s        *Store
	from, to store.UserIndex
}

// ListUser implements store.UserIndex: both stores, the new store's record
// for a key in both.
func (u index) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	entries, err := u.to.ListUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	old, err := u.from.ListUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("migrate: list the user in the old store: %w", err)
	}
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		seen[e.Key] = true
	}
	for _, e := range old {
		if !seen[e.Key] {
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// DeleteUser implements store.UserIndex: both stores, the old one first.
// It counts a session in both once.
func (u index) DeleteUser(ctx context.Context, userID string) (int, error) {
	inNew, err := u.to.ListUser(ctx, userID)
	if err != nil {
		return 0, err
	}
	inOld, err := u.from.ListUser(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("migrate: list the user in the old store: %w", err)
	}
	if _, err := u.from.DeleteUser(ctx, userID); err != nil {
		return 0, fmt.Errorf("migrate: delete the user in the old store: %w", err)
	}
	n, err := u.to.DeleteUser(ctx, userID)
	seen := make(map[string]bool, len(inNew))
	for _, e := range inNew {
		seen[e.Key] = true
	}
	for _, e := range inOld {
		if !seen[e.Key] {
			n++
		}
	}
	return n, err
}
