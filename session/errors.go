package session

import (
	"errors"
	"fmt"

	"github.com/sessionkit/sessionkit/store"
)

// The errors the Manager and Session report, every one in this file. Test
// them with errors.Is (and errors.As for *TokenSizeError): most arrive
// wrapped with what failed. They are the session layer's own; the store
// layer's sentinels (store.ErrNotFound, store.ErrConflict, ...) say what
// one store call did and are wrapped inside ErrStore when they reach a
// caller of this package.
var (
	// ErrStore wraps failures of the store (other than a lost
	// compare-and-set, which the Manager retries).
	ErrStore = errors.New("session: store failed")

	// ErrTooManyConflicts: the session was changed concurrently more than
	// Config.MaxRetries times while this request tried to save it (each
	// lost compare-and-set, a store.ErrConflict, was merged and retried).
	ErrTooManyConflicts = errors.New("session: too many concurrent updates")

	// ErrNoManager: the request did not pass through Manager.Handler.
	ErrNoManager = errors.New("session: request did not pass through the session middleware")

	// ErrUnsupported: the store (or the token strategy) lacks the
	// capability. It is store.ErrUnsupported itself, so either name
	// matches.
	ErrUnsupported = store.ErrUnsupported

	// ErrUnknownHandle is returned by Manager.DestroyHandle for a handle
	// that names no session of the user.
	ErrUnknownHandle = errors.New("session: no such session")

	// ErrTooManySessions: a Login was refused because its user already
	// holds Config.MaxSessionsPerUser sessions and Config.SessionLimit is
	// RefuseNew. Nothing was saved. The default error handler answers 409.
	ErrTooManySessions = errors.New("session: too many sessions for this user")

	// ErrToken wraps failures of Config.Tokens to seal a token or to
	// record a revocation. A failed revocation (its store is unreachable)
	// also wraps ErrStore, so that it is answered like a store failure
	// (503 by default).
	ErrToken = errors.New("session: token codec failed")

	// ErrTokenTooLarge is matched (errors.Is) by every *TokenSizeError.
	ErrTokenTooLarge = errors.New("session: token too large")
)

// TokenSizeError reports a session too large to travel in its token.
type TokenSizeError struct {
	Size  int // bytes the Set-Cookie header value (or the token) would take
	Limit int // MaxSetCookieBytes, or the codec's own limit on tokens
}

func (e *TokenSizeError) Error() string {
	return fmt.Sprintf("session: the session's token would take %d bytes, over the limit of %d "+
		"(browsers may drop larger cookies silently); keep less in the session, or use a store", e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrTokenTooLarge) true.
func (e *TokenSizeError) Is(target error) bool { return target == ErrTokenTooLarge }
