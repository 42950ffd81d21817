package memcachedstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/sessionkit/sessionkit/store"
)

// indexAdd raises key's entry in userID's index to horizon h (Unix ms),
// dropping the entries whose horizon has passed: add for a user with no
// index, otherwise gets and cas, again while other writers (the user's
// other logins) win.
func (s *Store) indexAdd(ctx context.Context, userID, key string, h int64) error {
	ik := s.indexKey(userID)
	for i := range maxIndexRetries {
		if i > 0 {
			// Other logins of the same user write the same item: spread
			// the retries.
			time.Sleep(time.Duration(rand.Int64N(int64(i)*int64(time.Millisecond) + 1)))
		}
		it, err := s.get(ctx, ik)
		if errors.Is(err, errMiss) {
			value := appendIndex(nil, []entry{{key, h}})
			if err := s.tooLarge(len(value)); err != nil {
				return err
			}
			err := s.call(ctx, ik, func() error {
				return s.c.Add(&memcache.Item{Key: ik, Value: value, Expiration: s.exptime(h)})
			})
			if errors.Is(err, errExists) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		es, err := parseIndex(it.Value)
		if err != nil {
			es = nil // an item that is not an index: replace it
		}
		now := s.now().UnixMilli()
		found := false
		changed := err != nil
		es = slices.DeleteFunc(es, func(e entry) bool {
			if e.horizon <= now {
				changed = true
				return true
			}
			return false
		})
		top := h
		for j := range es {
			if es[j].key == key {
				found = true
				if es[j].horizon < h {
					es[j].horizon, changed = h, true
				}
			}
			top = max(top, es[j].horizon)
		}
		if !found {
			es, changed = append(es, entry{key, h}), true
		}
		if !changed {
			return nil
		}
		it.Value, it.Expiration = appendIndex(make([]byte, 0, len(it.Value)+len(key)+16), es), s.exptime(top)
		if err := s.tooLarge(len(it.Value)); err != nil {
			return err
		}
		err = s.call(ctx, ik, func() error { return s.c.CompareAndSwap(it) })
		if errors.Is(err, errExists) || errors.Is(err, errMiss) {
			continue
		}
		return err
	}
	return errors.New("the user's index kept changing; gave up")
}

// indexed returns the keys in userID's index whose horizon has not passed.
func (s *Store) indexed(ctx context.Context, userID string) ([]string, error) {
	ik := s.indexKey(userID)
	it, err := s.get(ctx, ik)
	if errors.Is(err, errMiss) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("read user index", ik, err)
	}
	es, err := parseIndex(it.Value)
	if err != nil {
		return nil, s.fail("read user index", ik, err)
	}
	now := s.now().UnixMilli()
	var keys []string
	for _, e := range es {
		if e.horizon > now {
			keys = append(keys, e.key)
		}
	}
	return keys, nil
}

// bound reads the items of keys, each server's share in one gets of many
// keys, and returns those that hold a live record bound to userID, by item
// key.
func (s *Store) bound(ctx context.Context, userID string, keys []string) (map[string]*memcache.Item, error) {
	byServer := make(map[int][]string)
	for _, k := range keys {
		ik := s.itemKey(k)
		i := s.sel.pick(ik)
		byServer[i] = append(byServer[i], ik)
	}
	out := make(map[string]*memcache.Item)
	for _, iks := range byServer {
		var items map[string]*memcache.Item
		err := s.call(ctx, iks[0], func() (err error) {
			items, err = s.c.GetMulti(iks)
			return err
		})
		if err != nil {
			return nil, s.fail("read user's records", iks[0], err)
		}
		for ik, it := range items {
			if r, err := parseRecord(it.Value); err == nil && r.user == userID && s.live(r) {
				out[ik] = it
			}
		}
	}
	return out, nil
}

// ListUser returns the live records bound to userID: one gets of the
// user's index, then one gets of many keys per server holding some of
// them. Keys whose record is gone, expired or bound to another user are
// skipped.
func (s *Store) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if userID == "" {
		return nil, nil
	}
	keys, err := s.indexed(ctx, userID)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	items, err := s.bound(ctx, userID, keys)
	if err != nil {
		return nil, err
	}
	var entries []store.Entry
	for _, k := range keys {
		if it, ok := items[s.itemKey(k)]; ok {
			r, _ := parseRecord(it.Value)
			entries = append(entries, store.Entry{Key: k, Record: r.toRecord()})
		}
	}
	return entries, nil
}

// DeleteUser deletes every record bound to userID and returns how many it
// deleted: reads as ListUser, then a compare-and-delete (cas) of each
// record read, so that a record saved meanwhile is read again and deleted
// only if it is still bound to userID. It never writes a record back: an
// ended session stays ended. On an error the count is of the deletions
// confirmed so far.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	if userID == "" {
		return 0, nil
	}
	keys, err := s.indexed(ctx, userID)
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	items, err := s.bound(ctx, userID, keys)
	if err != nil {
		return 0, err
	}
	n := 0
	for ik, it := range items {
		for range maxRetries {
			err := s.casDelete(ctx, it)
			if err == nil {
				n++
				break
			}
			if errors.Is(err, errMiss) {
				break // gone meanwhile
			}
			if !errors.Is(err, errExists) {
				return n, s.fail("delete user", ik, err)
			}
			// Saved or touched since the read: delete it if still bound.
			it, err = s.get(ctx, ik)
			if errors.Is(err, errMiss) {
				break
			}
			if err != nil {
				return n, s.fail("delete user", ik, err)
			}
			if r, err := parseRecord(it.Value); err != nil || r.user != userID || !s.live(r) {
				break
			}
		}
	}
	return n, nil
}
