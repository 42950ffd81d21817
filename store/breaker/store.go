package breaker

import (
	"context"

	"github.com/sessionkit/sessionkit/store"
)

// Wrap returns a store that sends every call to s through b. The result
// implements exactly the optional interfaces of s (store.Toucher,
// store.UserIndex, store.Notifier), so that the session Manager sees the
// same capabilities; Subscribe and Close go straight to s.
func Wrap(s store.Store, b *Breaker) store.Store {
	return store.Intercept(s, func(ctx context.Context, _ string, call func(context.Context) error) error {
		return b.Do(ctx, call)
	})
}
