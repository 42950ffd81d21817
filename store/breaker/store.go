package breaker

import (
	"context"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Wrap returns a store that sends every call to s through b, as Do does.
// The result implements exactly the optional interfaces of s
// (store.Toucher, store.UserIndex, store.Notifier), so that the session
// Manager sees the same capabilities; Subscribe and Close go straight to s.
//
// Unlike store.Intercept with Do, the wrapper calls s directly, with no
// closure per call: on the closed circuit it adds no allocation (unless
// Config.Timeout is set).
func Wrap(s store.Store, b *Breaker) store.Store {
	g := &guarded{s: s, b: b}
	t, isT := s.(store.Toucher)
	u, isU := s.(store.UserIndex)
	n, isN := s.(store.Notifier)
	gt, gu := guardedToucher{g, t}, guardedIndex{g, u}
	switch {
	case isT && isU && isN:
		return struct {
			store.Store
			store.Toucher
			store.UserIndex
			store.Notifier
		}{g, gt, gu, n}
	case isT && isU:
		return struct {
			store.Store
			store.Toucher
			store.UserIndex
		}{g, gt, gu}
	case isT && isN:
		return struct {
			store.Store
			store.Toucher
			store.Notifier
		}{g, gt, n}
	case isU && isN:
		return struct {
			store.Store
			store.UserIndex
			store.Notifier
		}{g, gu, n}
	case isT:
		return struct {
			store.Store
			store.Toucher
		}{g, gt}
	case isU:
		return struct {
			store.Store
			store.UserIndex
		}{g, gu}
	case isN:
		return struct {
			store.Store
			store.Notifier
		}{g, n}
	}
	return g
}

// pass is one call let through by begin; end records its outcome.
type pass struct {
	ctx    context.Context
	probe  bool
	cancel context.CancelFunc // nil without Config.Timeout
}

// begin is the first half of Do: it returns an *OpenError if the circuit
// is open, and otherwise the call's context, bounded by Config.Timeout.
func (b *Breaker) begin(ctx context.Context) (pass, error) {
	probe, err := b.allow()
	if err != nil {
		return pass{}, err
	}
	c := pass{ctx: ctx, probe: probe}
	if d, ok := ctx.Deadline(); b.cfg.Timeout > 0 && (!ok || time.Until(d) > b.cfg.Timeout) {
		c.ctx, c.cancel = context.WithTimeout(ctx, b.cfg.Timeout)
	}
	return c, nil
}

// end is the second half of Do: it records the outcome err of c.
func (b *Breaker) end(c pass, err error) {
	b.record(c.ctx, c.probe, err)
	if c.cancel != nil {
		c.cancel()
	}
}

type guarded struct {
	s store.Store
	b *Breaker
}

func (g *guarded) Load(ctx context.Context, key string) (store.Record, error) {
	c, err := g.b.begin(ctx)
	if err != nil {
		return store.Record{}, err
	}
	rec, err := g.s.Load(c.ctx, key)
	g.b.end(c, err)
	return rec, err
}

func (g *guarded) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	c, err := g.b.begin(ctx)
	if err != nil {
		return 0, err
	}
	v, err := g.s.Save(c.ctx, key, rec)
	g.b.end(c, err)
	return v, err
}

func (g *guarded) Delete(ctx context.Context, key string, version uint64) error {
	c, err := g.b.begin(ctx)
	if err != nil {
		return err
	}
	err = g.s.Delete(c.ctx, key, version)
	g.b.end(c, err)
	return err
}

func (g *guarded) Close() error { return g.s.Close() }

type guardedToucher struct {
	g *guarded
	t store.Toucher
}

func (t guardedToucher) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	c, err := t.g.b.begin(ctx)
	if err != nil {
		return err
	}
	err = t.t.Touch(c.ctx, key, version, expires)
	t.g.b.end(c, err)
	return err
}

type guardedIndex struct {
	g *guarded
	u store.UserIndex
}

func (i guardedIndex) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	c, err := i.g.b.begin(ctx)
	if err != nil {
		return nil, err
	}
	es, err := i.u.ListUser(c.ctx, userID)
	i.g.b.end(c, err)
	return es, err
}

func (i guardedIndex) DeleteUser(ctx context.Context, userID string) (int, error) {
	c, err := i.g.b.begin(ctx)
	if err != nil {
		return 0, err
	}
	n, err := i.u.DeleteUser(c.ctx, userID)
	i.g.b.end(c, err)
	return n, err
}
