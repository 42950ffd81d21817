package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Observer receives the Manager's events: what happens to sessions, and
// every call the Manager makes to its store. Adapters turn them into
// metrics, traces or audit logs (see package sessionmetrics). The methods
// run synchronously in the goroutine that caused the event, so they must be
// quick, must not block, and must be safe for concurrent use. Without an
// Observer (the default) events cost nothing.
type Observer interface {
	// SessionEvent reports a change in a session's life.
	SessionEvent(ctx context.Context, e Event)
	// StoreCall reports one call to the store, after it returned.
	StoreCall(ctx context.Context, c StoreCall)
}

// EventKind says what happened to a session.
type EventKind uint8

// Kinds of Event. Created, Renewed, Destroyed, UserRevoked,
// ConflictRetried, ConflictGaveUp, Degraded, LimitEvicted, LimitRefused
// and Adopted are exact: reported once
// each time they happen in this Manager, whatever the store. Expired is
// best-effort: it is reported when the store hands back a session that the
// Manager finds past its idle timeout or lifetime. memstore, redisstore
// and pgstore never hand back expired records, so with them expiry shows
// elsewhere: memstore reports every expiry exactly as a store.OpExpire
// event and in Stats.Expirations; Redis expires keys silently; pgstore's
// sweep deletes expired rows and logs how many at debug level.
const (
	EventCreated         EventKind = iota + 1 // a new session was saved
	EventRenewed                              // a session got a new ID (Login, Renew)
	EventDestroyed                            // a session was destroyed (Destroy, DestroyHandle)
	EventExpired                              // a request presented an expired session
	EventUserRevoked                          // DestroyUser ended Count sessions of a user
	EventConflictRetried                      // a save lost a compare-and-set and is merged and retried
	EventConflictGaveUp                       // a save lost MaxRetries+1 times; the request failed
	EventDegraded                             // the store failed and FailOpen served a degraded session
	EventLimitEvicted                         // a Login beyond Config.MaxSessionsPerUser ended this session
	EventLimitRefused                         // a Login beyond Config.MaxSessionsPerUser was refused
	EventAdopted                              // a session of Config.Previous was taken over
)

func (k EventKind) String() string {
	switch k {
	case EventCreated:
		return "created"
	case EventRenewed:
		return "renewed"
	case EventDestroyed:
		return "destroyed"
	case EventExpired:
		return "expired"
	case EventUserRevoked:
		return "user_revoked"
	case EventConflictRetried:
		return "conflict_retried"
	case EventConflictGaveUp:
		return "conflict_gave_up"
	case EventDegraded:
		return "degraded"
	case EventLimitEvicted:
		return "limit_evicted"
	case EventLimitRefused:
		return "limit_refused"
	case EventAdopted:
		return "adopted"
	}
	return "unknown"
}

// Event is one session event.
type Event struct {
	Kind EventKind
	// Session names the session by a salted hash, stable for the life of
	// the Manager and meaningless outside it; never the ID. Empty for
	// UserRevoked.
	Session string
	// Count is the number of sessions ended (UserRevoked; -1, unknown,
	// with Config.Tokens) or the attempt number (ConflictRetried,
	// ConflictGaveUp).
	Count int
	// Err is the store's error for Degraded.
	Err error
}

// StoreCall is one call of the Manager to its store.
type StoreCall struct {
	Op       string // store.OpNameLoad, store.OpNameSave, ...
	Duration time.Duration
	Err      error // as the store returned it
	// Outage reports that Err says the store failed (store.IsOutage), as
	// opposed to an answer of the contract such as not found or conflict.
	Outage bool
	// Result classifies the call: one of the store.Result constants.
	Result string
}

// redactor names sessions in logs and events by a salted hash of their
// store key (OWASP session management cheat sheet): lines about one session
// can be correlated, but nothing in them leads back to its ID, nor to its
// key in a store dump.
type redactor struct{ salt [16]byte }

func newRedactor() redactor {
	var r redactor
	rand.Read(r.salt[:])
	return r
}

// name returns the salted hash of a store key: 16 hex characters.
func (r *redactor) name(key string) string {
	if key == "" {
		return ""
	}
	h := hmac.New(sha256.New, r.salt[:])
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// observe wraps st so that every call is reported to o.
func observe(st store.Store, o Observer) store.Store {
	return store.Intercept(st, func(ctx context.Context, op string, call func(context.Context) error) error {
		start := time.Now()
		err := call(ctx)
		d, result := time.Since(start), store.Result(ctx, err)
		o.StoreCall(ctx, StoreCall{Op: op, Duration: d, Err: err, Result: result,
			Outage: result == store.ResultOutage || result == store.ResultUnavailable})
		return err
	})
}

// event reports e to the Observer, if there is one.
func (m *Manager) event(ctx context.Context, kind EventKind, key string, count int, err error) {
	if m.cfg.Observer == nil {
		return
	}
	m.cfg.Observer.SessionEvent(ctx, Event{Kind: kind, Session: m.redact.name(key), Count: count, Err: err})
}

// Observers returns an Observer that reports every event to each of obs in
// turn (nil entries are skipped): metrics and tracing on one Manager.
func Observers(obs ...Observer) Observer {
	var list multiObserver
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	return list
}

type multiObserver []Observer

func (m multiObserver) SessionEvent(ctx context.Context, e Event) {
	for _, o := range m {
		o.SessionEvent(ctx, e)
	}
}

func (m multiObserver) StoreCall(ctx context.Context, c StoreCall) {
	for _, o := range m {
		o.StoreCall(ctx, c)
	}
}
