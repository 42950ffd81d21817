package store

import (
	"context"
	"errors"
	"time"
)

// Names of the operations passed to an Interceptor.
const (
	OpNameLoad       = "load"
	OpNameSave       = "save"
	OpNameDelete     = "delete"
	OpNameTouch      = "touch"
	OpNameListUser   = "list_user"
	OpNameDeleteUser = "delete_user"
)

// An Interceptor runs around every call to a store: it must call call (or
// return an error without calling it), and returns what the caller sees.
// op is one of the OpName constants.
type Interceptor func(ctx context.Context, op string, call func(context.Context) error) error

// Intercept returns a store that sends every Load, Save, Delete, Touch,
// ListUser and DeleteUser of s through ic: the way to add circuit breaking,
// metrics or tracing to any store. The result implements exactly the
// optional interfaces of s (Toucher, UserIndex, Notifier), so that callers
// see the same capabilities; Subscribe and Close go straight to s.
func Intercept(s Store, ic Interceptor) Store {
	c := &intercepted{s: s, ic: ic}
	t, isT := s.(Toucher)
	u, isU := s.(UserIndex)
	n, isN := s.(Notifier)
	it, iu := interceptedToucher{c, t}, interceptedIndex{c, u}
	switch {
	case isT && isU && isN:
		return struct {
			Store
			Toucher
			UserIndex
			Notifier
		}{c, it, iu, n}
	case isT && isU:
		return struct {
			Store
			Toucher
			UserIndex
		}{c, it, iu}
	case isT && isN:
		return struct {
			Store
			Toucher
			Notifier
		}{c, it, n}
	case isU && isN:
		return struct {
			Store
			UserIndex
			Notifier
		}{c, iu, n}
	case isT:
		return struct {
			Store
			Toucher
		}{c, it}
	case isU:
		return struct {
			Store
			UserIndex
		}{c, iu}
	case isN:
		return struct {
			Store
			Notifier
		}{c, n}
	}
	return c
}

type intercepted struct {
	s  Store
	ic Interceptor
}

func (c *intercepted) Load(ctx context.Context, key string) (rec Record, err error) {
	err = c.ic(ctx, OpNameLoad, func(ctx context.Context) error {
		rec, err = c.s.Load(ctx, key)
		return err
	})
	return rec, err
}

func (c *intercepted) Save(ctx context.Context, key string, rec Record) (v uint64, err error) {
	err = c.ic(ctx, OpNameSave, func(ctx context.Context) error {
		v, err = c.s.Save(ctx, key, rec)
		return err
	})
	return v, err
}

func (c *intercepted) Delete(ctx context.Context, key string, version uint64) error {
	return c.ic(ctx, OpNameDelete, func(ctx context.Context) error { return c.s.Delete(ctx, key, version) })
}

func (c *intercepted) Close() error { return c.s.Close() }

type interceptedToucher struct {
	c *intercepted
	t Toucher
}

func (i interceptedToucher) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	return i.c.ic(ctx, OpNameTouch, func(ctx context.Context) error { return i.t.Touch(ctx, key, version, expires) })
}

type interceptedIndex struct {
	c *intercepted
	u UserIndex
}

func (i interceptedIndex) ListUser(ctx context.Context, user string) (es []Entry, err error) {
	err = i.c.ic(ctx, OpNameListUser, func(ctx context.Context) error {
		es, err = i.u.ListUser(ctx, user)
		return err
	})
	return es, err
}

func (i interceptedIndex) DeleteUser(ctx context.Context, user string) (n int, err error) {
	err = i.c.ic(ctx, OpNameDeleteUser, func(ctx context.Context) error {
		n, err = i.u.DeleteUser(ctx, user)
		return err
	})
	return n, err
}

// Results of a store call, as Result names them: labels for metrics and
// traces.
const (
	ResultOK          = "ok"
	ResultNotFound    = "not_found"   // ErrNotFound: a normal answer
	ResultConflict    = "conflict"    // ErrConflict: a normal answer
	ResultInvalidKey  = "invalid_key" // ErrInvalidKey
	ResultUnsupported = "unsupported" // ErrUnsupported
	ResultClosed      = "closed"      // ErrClosed
	ResultTooLarge    = "too_large"   // ErrTooLarge: the caller's record, not an outage
	ResultCanceled    = "canceled"    // the caller's context was canceled
	ResultUnavailable = "unavailable" // ErrUnavailable: the store was not asked (a circuit breaker is open)
	ResultOutage      = "outage"      // any other error: the store failed
)

// Result classifies err, returned by a store call made with ctx, as one of
// the Result constants. Only ResultOutage and ResultUnavailable say the
// store is unhealthy.
func Result(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return ResultOK
	case errors.Is(err, ErrUnavailable):
		return ResultUnavailable
	case errors.Is(err, ErrNotFound):
		return ResultNotFound
	case errors.Is(err, ErrConflict):
		return ResultConflict
	case errors.Is(err, ErrInvalidKey):
		return ResultInvalidKey
	case errors.Is(err, ErrUnsupported):
		return ResultUnsupported
	case errors.Is(err, ErrClosed):
		return ResultClosed
	case errors.Is(err, ErrTooLarge):
		return ResultTooLarge
	case !IsOutage(ctx, err):
		return ResultCanceled
	}
	return ResultOutage
}

// IsOutage reports whether err, from a store call, says the store failed,
// as opposed to one of the contract's answers (not found, conflict,
// invalid key, unsupported, too large, closed) or the caller giving up.
func IsOutage(ctx context.Context, err error) bool {
	switch {
	case err == nil,
		errors.Is(err, ErrNotFound),
		errors.Is(err, ErrConflict),
		errors.Is(err, ErrInvalidKey),
		errors.Is(err, ErrUnsupported),
		errors.Is(err, ErrTooLarge),
		errors.Is(err, ErrClosed):
		return false
	case errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), context.Canceled):
		return false
	}
	return true
}
