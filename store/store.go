package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors returned by stores. Adapters wrap them with %w and context, so test
// them with errors.Is, never by comparing strings.
var (
	// ErrNotFound: no record exists under the key, or it has expired.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a compare-and-set failed because the stored version is not
	// the expected one (another writer won, or the record was deleted).
	ErrConflict = errors.New("store: version conflict")
	// ErrInvalidKey: the key is empty or longer than MaxKeyLen.
	ErrInvalidKey = errors.New("store: invalid key")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnsupported: the store lacks an optional capability.
	ErrUnsupported = errors.New("store: operation not supported")
	// ErrUnavailable: the store is known to be down and was not asked
	// (a circuit breaker is open). Nothing was read or written.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrTooLarge: Save or Touch refused a record larger than the store
	// can hold (Memcached's item size limit, say). Nothing was written.
	// It is the caller's input, not an outage: a circuit breaker does not
	// count it.
	ErrTooLarge = errors.New("store: record too large")
)

// MaxKeyLen is the longest key every store must accept. The session Manager
// uses 43-byte keys; the limit leaves room for callers with their own keys.
const MaxKeyLen = 512

// Record is one stored session.
type Record struct {
	// Data is the encoded session. It is opaque to the store and may be
	// empty. A store may keep the slice it was given to Save; the caller must
	// not modify it afterwards. A slice returned by Load must be treated as
	// read-only: the store may share it with other callers.
	Data []byte

	// Version identifies this revision of the record. Load sets it; Save
	// compares it (see Store.Save). Zero means "no record".
	Version uint64

	// Expires is the absolute time after which the record no longer exists.
	// It must be set on Save; a record whose Expires is not after the store's
	// clock is treated as absent by every operation. Stores keep at least
	// millisecond precision.
	Expires time.Time

	// UserID binds the record to a user for stores that implement UserIndex.
	// Empty means "not bound". Stores without an index still store and return
	// it.
	UserID string
}

// Store is the contract every session store implements. Keys are opaque
// non-empty strings of at most MaxKeyLen bytes, which may contain any byte;
// a store must not let two different keys collide.
//
// All methods are safe for concurrent use. A store that cannot reach its
// backend, or whose context ends, returns an error that wraps neither
// ErrNotFound nor ErrConflict, so that callers never mistake an outage for a
// missing session. After such an error a write may or may not have been
// applied; ErrConflict, ErrInvalidKey and ErrClosed guarantee it was not.
type Store interface {
	// Load returns the record stored under key, or ErrNotFound if there is
	// none or it has expired.
	Load(ctx context.Context, key string) (Record, error)

	// Save is a compare-and-set. It writes rec under key only if the version
	// currently stored equals rec.Version, where 0 means "no live record
	// exists" (a new session). On success it returns the record's new
	// version, which is non-zero and differs from every version the key had
	// before. Otherwise it returns ErrConflict and changes nothing. Saving
	// with rec.Version > 0 when the record has been deleted or has expired is
	// a conflict, so a deleted session is never brought back by a late write.
	Save(ctx context.Context, key string, rec Record) (version uint64, err error)

	// Delete removes the record under key. With version 0 the delete is
	// unconditional and deleting an absent key is not an error. With
	// version > 0 it is a compare-and-delete: it returns ErrConflict, and
	// deletes nothing, unless that version is the one stored.
	Delete(ctx context.Context, key string, version uint64) error

	// Close releases the store's resources and ends its background work.
	// Calls after Close return ErrClosed.
	Close() error
}

// Toucher is implemented by stores that can move a record's expiry without
// rewriting its data. Without it, the Manager extends a session by saving the
// unchanged record with a compare-and-set.
type Toucher interface {
	// Touch sets the expiry of the live record under key, later or earlier.
	// With version > 0 it does so only if that version is the one stored,
	// and returns ErrConflict, changing nothing, otherwise, so that an
	// expiry computed from a stale copy never overwrites a newer one; with
	// version 0 it is unconditional. It returns ErrNotFound if there is no
	// live record. It changes neither the version nor the data.
	Touch(ctx context.Context, key string, version uint64, expires time.Time) error
}

// UserIndex is implemented by stores that index records by Record.UserID.
// Without it, the Manager's per-user operations return ErrUnsupported.
type UserIndex interface {
	// ListUser returns the live records bound to userID, in no particular
	// order. An unknown user has none, and so does "" (unbound records are
	// not indexed). User IDs may contain any byte.
	ListUser(ctx context.Context, userID string) ([]Entry, error)

	// DeleteUser deletes every record bound to userID and returns how many
	// live records it deleted.
	DeleteUser(ctx context.Context, userID string) (int, error)
}

// Entry is a record together with its key.
type Entry struct {
	Key    string
	Record Record
}

// Notifier is implemented by stores that report changes, so that near
// caches can be kept coherent.
type Notifier interface {
	// Subscribe calls fn for every change made after Subscribe returns,
	// until the returned function returns; fn is not called after that.
	// fn is called from the store's goroutines, possibly concurrently; it
	// must not block and must not call the store. OpSave and OpDelete are
	// always reported, and OpReset whenever the feed may have missed some;
	// each store documents which other events it reports and whether they
	// are exact or best-effort.
	//
	// A store whose change feed its configuration turned off (pgstore
	// without Config.Notify) returns nil and never calls fn: a caller that
	// relies on the feed, such as a near cache, must refuse it.
	Subscribe(fn func(Event)) (unsubscribe func())
}

// LiveFeed is implemented by Notifiers whose change feed can stall without
// breaking, and which can tell whether it is working: a near cache serves
// and caches records only while FeedLive reports true, and sends every read
// to the store otherwise.
type LiveFeed interface {
	// FeedLive reports whether the change feed is up and has shown, within
	// the store's documented bound, that it still delivers: a store
	// reports false before its first Subscribe, from the moment it knows
	// or suspects that changes may go unreported, and until a new feed is
	// up. Each turn from false to true, and each from true to false that
	// the store notices, is followed by an OpReset, so that what a
	// subscriber cached meanwhile is dropped. It is safe for concurrent
	// use and cheap enough to call on every read.
	FeedLive() bool
}

// Op is the kind of change an Event reports.
type Op uint8

// Kinds of change.
const (
	OpSave   Op = iota + 1 // a record was created or replaced
	OpTouch                // a record's expiry moved
	OpDelete               // a record was deleted by a caller
	OpExpire               // a record expired and was removed
	OpEvict                // a live record was removed to make room
	// OpReset says that changes may have gone unreported: the store's
	// change feed broke (a lost connection, a watch that ended) and was
	// set up again, or could not be. Key is empty. A near cache drops
	// everything it holds when it sees one. A store that can lose its feed
	// reports OpReset each time it does, before any event of the new feed.
	OpReset
)

func (o Op) String() string {
	switch o {
	case OpSave:
		return "save"
	case OpTouch:
		return "touch"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	case OpEvict:
		return "evict"
	case OpReset:
		return "reset"
	}
	return "unknown"
}

// Event is one change reported by a Notifier.
type Event struct {
	Op      Op
	Key     string
	Version uint64 // the new version for OpSave; otherwise the last known, or 0
}

// CheckKey returns ErrInvalidKey, wrapped with a reason, if key is not a
// valid store key. Stores call it first in every keyed method.
func CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	return nil
}
