package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Defaults of Config.
const (
	DefaultFailures = 5
	DefaultOpenFor  = 2 * time.Second
)

// Config configures a Breaker. The zero value means every default.
type Config struct {
	// Failures is how many consecutive failed calls open the circuit;
	// default DefaultFailures.
	Failures int

	// Timeout, if positive, bounds every call to the store with a context
	// deadline of its own. Default 0: none, since the stores bound their
	// calls themselves (redisstore and pgstore Config.Timeout, 2 s by
	// default) and a second deadline per call costs an allocation and a
	// timer. Either way a call that times out counts as a failure.
	Timeout time.Duration

	// OpenFor is how long the circuit stays open before one probe call is
	// let through (half-open); default DefaultOpenFor.
	OpenFor time.Duration

	// OnStateChange, if set, is called after every change of state, with
	// the breaker's lock released. It must not block.
	OnStateChange func(from, to State)

	// Now is the clock; default time.Now.
	Now func() time.Time
}

// State is the state of the circuit.
type State int32

// States of the circuit.
const (
	Closed   State = iota // calls go through
	Open                  // calls fail fast with an *OpenError
	HalfOpen              // one probe call goes through; the others fail fast
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// OpenError is returned, without calling the store, while the circuit is
// open. It wraps store.ErrUnavailable and the failure that opened the
// circuit.
type OpenError struct {
	// Until is when the next probe will be let through.
	Until time.Time
	// Cause is the last failure seen before the circuit opened.
	Cause error

	now time.Time
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("breaker: store unavailable, retry in %v (last error: %v)", e.RetryAfter(), e.Cause)
}

// Unwrap returns store.ErrUnavailable and the cause.
func (e *OpenError) Unwrap() []error { return []error{store.ErrUnavailable, e.Cause} }

// RetryAfter is how long until the next probe, rounded up to a second as
// HTTP's Retry-After wants, and at least one second.
func (e *OpenError) RetryAfter() time.Duration {
	d := e.Until.Sub(e.now)
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

// Breaker is a circuit breaker: after Failures consecutive failed calls it
// opens and fails calls fast for OpenFor, then lets one probe through; the
// probe's success closes it, its failure opens it again. A Breaker is safe
// for concurrent use and runs no goroutines. While closed, a call costs two
// atomic loads, plus a context of its own when Config.Timeout is set.
type Breaker struct {
	cfg      Config
	state    atomic.Int32 // State; read without the lock on the fast path
	failures atomic.Int32 // consecutive failures while closed

	mu      sync.Mutex
	until   time.Time // end of the open period
	probing bool      // a half-open probe is in flight
	cause   error     // the last failure
}

// New returns a closed Breaker for cfg. It fails only on negative values.
func New(cfg Config) (*Breaker, error) {
	if cfg.Failures < 0 || cfg.OpenFor < 0 || cfg.Timeout < 0 {
		return nil, errors.New("breaker: Failures, Timeout and OpenFor must not be negative")
	}
	if cfg.Failures == 0 {
		cfg.Failures = DefaultFailures
	}
	if cfg.OpenFor == 0 {
		cfg.OpenFor = DefaultOpenFor
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Breaker{cfg: cfg}, nil
}

// State returns the current state.
func (b *Breaker) State() State { return State(b.state.Load()) }

// Do runs call unless the circuit is open, and records its outcome. The
// error from call is returned as it is; while the circuit is open Do
// returns an *OpenError without running call.
func (b *Breaker) Do(ctx context.Context, call func(context.Context) error) error {
	c, err := b.begin(ctx)
	if err != nil {
		return err
	}
	err = call(c.ctx)
	b.end(c, err)
	return err
}

// allow reports whether a call may go ahead, and whether it is the probe.
func (b *Breaker) allow() (probe bool, err error) {
	if State(b.state.Load()) == Closed {
		return false, nil
	}
	b.mu.Lock()
	now := b.cfg.Now()
	var from State
	switch from = State(b.state.Load()); {
	case from == Closed:
	case from == Open && now.Before(b.until):
		err = &OpenError{Until: b.until, Cause: b.cause, now: now}
	case b.probing: // half-open, with the probe in flight
		err = &OpenError{Until: now.Add(b.cfg.OpenFor), Cause: b.cause, now: now}
	default: // the open period is over, or half-open without a probe
		b.state.Store(int32(HalfOpen))
		b.probing, probe = true, true
	}
	b.mu.Unlock()
	if probe {
		b.notify(from, HalfOpen)
	}
	return probe, err
}

func (b *Breaker) record(ctx context.Context, probe bool, err error) {
	bad := store.IsOutage(ctx, err)
	if !probe {
		if State(b.state.Load()) != Closed {
			return // a call that started before the circuit opened
		}
		if !bad {
			if b.failures.Load() != 0 {
				b.failures.Store(0)
			}
			return
		}
	}
	b.mu.Lock()
	from := State(b.state.Load())
	to := from
	switch {
	case probe && !bad:
		b.probing = false
		b.failures.Store(0)
		to = Closed
	case probe:
		b.probing = false
		b.cause = err
		to = Open
	default: // a failure while closed
		b.cause = err
		if b.failures.Add(1) >= int32(b.cfg.Failures) && from == Closed {
			to = Open
		}
	}
	if to == Open {
		b.until = b.cfg.Now().Add(b.cfg.OpenFor)
		b.failures.Store(0)
	}
	b.state.Store(int32(to))
	b.mu.Unlock()
	if to != from {
		b.notify(from, to)
	}
}

func (b *Breaker) notify(from, to State) {
	if b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(from, to)
	}
}
