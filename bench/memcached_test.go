package bench

// Benchmarks on Memcached, in the shape of stores_test.go: sessionkit with
// memcachedstore beside a floor on the same client library (gomemcache:
// one get and one set of a small value, or one get), and beside sessionkit
// with redisstore and its own floor (rueidis), in the same run, so that
// the ratios compare like with like on the same machine at the same time.
// scs has no Memcached store.
//
//	impl=floor             gomemcache get (+ set with a TTL) under a random token
//	impl=sessionkit        the session Manager on memcachedstore, behind breaker.Wrap
//	impl=redis-floor       rueidis GET (+ SET PX), as BenchmarkRedis's floor
//	impl=redis-sessionkit  the session Manager on redisstore, behind breaker.Wrap
//
// Memcached comes from SESSIONKIT_MEMCACHED_ADDR (default 127.0.0.1:11211),
// Redis from SESSIONKIT_REDIS_ADDR. Memcached cannot delete by prefix: the
// run's items (under a fresh prefix) expire with the sessions, in 30
// minutes. Both gomemcache clients keep 64 idle connections, one per
// goroutine of the concurrent runs (gomemcache's default of 2 would dial
// per request).

import (
	"context"
	"errors"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store/memcachedstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// BenchmarkMemcached: the read-write request.
func BenchmarkMemcached(b *testing.B) {
	if stacks := memcachedStacks(b); stacks != nil {
		benchStores(b, stacks, readWrite)
	}
}

// BenchmarkMemcachedReadOnly: the read-only request.
func BenchmarkMemcachedReadOnly(b *testing.B) {
	if stacks := memcachedStacks(b); stacks != nil {
		benchStores(b, stacks, readOnly)
	}
}

func memcachedStacks(b *testing.B) []stack {
	addr := testenv.TCPAddr(b, "SESSIONKIT_MEMCACHED_ADDR", memcachedstore.DefaultAddr)
	raddr := testenv.TCPAddr(b, "SESSIONKIT_REDIS_ADDR", redisstore.DefaultAddr)
	if addr == "" || raddr == "" {
		return nil
	}
	prefix := uniqueName() + ":"
	ctx, cancel := context.WithTimeout(b.Context(), setupTimeout)
	defer cancel()

	mc := memcache.New(addr)
	mc.MaxIdleConns = highConc
	mc.Timeout = memcachedstore.DefaultTimeout
	b.Cleanup(func() { mc.Close() })
	floorKey := prefix + "floor:"
	floor := floorStack(
		func(_ context.Context, token string) ([]byte, error) {
			it, err := mc.Get(floorKey + token)
			if err != nil {
				return nil, err
			}
			return it.Value, nil
		},
		func(_ context.Context, token string) error {
			return mc.Set(&memcache.Item{Key: floorKey + token, Value: floorValue, Expiration: int32(sessionTTL.Seconds())})
		})
	ms, err := memcachedstore.New(ctx, memcachedstore.Config{Servers: []string{addr}, KeyPrefix: prefix + "sk:"})
	if err != nil {
		b.Fatalf("memcachedstore: %v", err)
	}
	b.Cleanup(func() { ms.Close() })

	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{raddr}, DisableCache: true})
	if err != nil {
		testenv.Missing(b, "redis at "+raddr+": "+err.Error())
		return nil
	}
	b.Cleanup(rc.Close)
	b.Cleanup(func() { deleteRedisKeys(b, rc, prefix) })
	rfloor := floorStack(
		func(ctx context.Context, token string) ([]byte, error) {
			return rc.Do(ctx, rc.B().Get().Key(floorKey+token).Build()).AsBytes()
		},
		func(ctx context.Context, token string) error {
			return rc.Do(ctx, rc.B().Set().Key(floorKey+token).Value(rueidis.BinaryString(floorValue)).Px(sessionTTL).Build()).Error()
		})
	rfloor.name = "redis-floor"
	rs, err := redisstore.New(ctx, redisstore.Config{Addrs: []string{raddr}, KeyPrefix: prefix + "sk:"})
	if err != nil {
		b.Fatalf("redisstore: %v", err)
	}
	b.Cleanup(func() { rs.Close() })

	sk := sessionkitStacks(b, ms)[0]
	rsk := sessionkitStacks(b, rs)[0]
	rsk.name = "redis-sessionkit"
	if sk.name != "sessionkit" {
		b.Fatal(errors.New("sessionkitStacks changed its names"))
	}
	return []stack{floor, sk, rfloor, rsk}
}
