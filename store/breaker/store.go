package breaker

import (
	"context"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Wrap returns a store that sends every call to s through b. The result
// implements exactly the optional interfaces of s (store.Toucher,
// store.UserIndex, store.Notifier), so that the session Manager sees the
// same capabilities; Subscribe and Close go straight to s.
func Wrap(s store.Store, b *Breaker) store.Store {
	c := &guarded{s: s, b: b}
	t, isT := s.(store.Toucher)
	u, isU := s.(store.UserIndex)
	n, isN := s.(store.Notifier)
	gt, gu := guardedToucher{c, t}, guardedIndex{c, u}
	switch {
	case isT && isU && isN:
		return struct {
			store.Store
			store.Toucher
			store.UserIndex
			store.Notifier
		}{c, gt, gu, n}
	case isT && isU:
		return struct {
			store.Store
			store.Toucher
			store.UserIndex
		}{c, gt, gu}
	case isT && isN:
		return struct {
			store.Store
			store.Toucher
			store.Notifier
		}{c, gt, n}
	case isU && isN:
		return struct {
			store.Store
			store.UserIndex
			store.Notifier
		}{c, gu, n}
	case isT:
		return struct {
			store.Store
			store.Toucher
		}{c, gt}
	case isU:
		return struct {
			store.Store
			store.UserIndex
		}{c, gu}
	case isN:
		return struct {
			store.Store
			store.Notifier
		}{c, n}
	}
	return c
}

type guarded struct {
	s store.Store
	b *Breaker
}

func (g *guarded) Load(ctx context.Context, key string) (rec store.Record, err error) {
	err = g.b.Do(ctx, func(ctx context.Context) error {
		rec, err = g.s.Load(ctx, key)
		return err
	})
	return rec, err
}

func (g *guarded) Save(ctx context.Context, key string, rec store.Record) (v uint64, err error) {
	err = g.b.Do(ctx, func(ctx context.Context) error {
		v, err = g.s.Save(ctx, key, rec)
		return err
	})
	return v, err
}

func (g *guarded) Delete(ctx context.Context, key string, version uint64) error {
	return g.b.Do(ctx, func(ctx context.Context) error { return g.s.Delete(ctx, key, version) })
}

func (g *guarded) Close() error { return g.s.Close() }

type guardedToucher struct {
	*guarded
	t store.Toucher
}

func (g guardedToucher) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	return g.b.Do(ctx, func(ctx context.Context) error { return g.t.Touch(ctx, key, version, expires) })
}

type guardedIndex struct {
	*guarded
	u store.UserIndex
}

func (g guardedIndex) ListUser(ctx context.Context, user string) (es []store.Entry, err error) {
	err = g.b.Do(ctx, func(ctx context.Context) error {
		es, err = g.u.ListUser(ctx, user)
		return err
	})
	return es, err
}

func (g guardedIndex) DeleteUser(ctx context.Context, user string) (n int, err error) {
	err = g.b.Do(ctx, func(ctx context.Context) error {
		n, err = g.u.DeleteUser(ctx, user)
		return err
	})
	return n, err
}
