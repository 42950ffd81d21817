package olricstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// kindIndex is a user's index entry: the keys of the records bound to the
// user, some perhaps since deleted, expired or rebound.
const kindIndex = 'I'

// pruneAt is the index length from which an addition first drops the keys
// that are no longer live records of the user.
const pruneAt = 32

// indexKey maps a user ID to the Olric key of its index entry: "u" + the
// ID when short, otherwise "w" + base64url(SHA-256(ID)).
func indexKey(user string) string {
	if len(user) <= maxShortKey {
		return "u" + user
	}
	sum := sha256.Sum256([]byte(user))
	return "w" + base64.RawURLEncoding.EncodeToString(sum[:])
}

func encodeIndex(physical int64, keys []string) []byte {
	b := encodeHeader(nil, kindIndex, physical)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	return b
}

func decodeIndex(b []byte) ([]string, error) {
	if len(b) < headerLen || b[0] != kindIndex {
		return nil, fmt.Errorf("%w: not an index entry", errCorrupt)
	}
	b = b[headerLen:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: index length", errCorrupt)
	}
	b = b[k:]
	keys := make([]string, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: index key", errCorrupt)
		}
		keys = append(keys, string(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	return keys, nil
}

// readIndex returns the keys listed in user's index entry.
func (s *Store) readIndex(ctx context.Context, user string) ([]string, error) {
	resp, err := s.dm.Get(ctx, indexKey(user))
	if isOlric(err, errKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("get index", err)
	}
	b, err := resp.Byte()
	if err != nil {
		return nil, wrap("get index", err)
	}
	return decodeIndex(b)
}

// indexAdd adds key to user's index entry, under the entry's lock, and
// keeps the entry for Config.IndexLifetime from now. Save calls it, holding
// the record's lock, before it writes a record newly bound to the user, so
// that a saved record is never missing from its user's index. The entry's
// lock is taken without this process's stripe (which the caller may hold).
func (s *Store) indexAdd(ctx context.Context, user, key string) error {
	ikey := indexKey(user)
	unlock, _, err := s.clusterLock(ctx, ikey)
	if err != nil {
		return err
	}
	defer unlock()
	keys, err := s.readIndex(ctx, user)
	if err != nil {
		return err
	}
	if slices.Contains(keys, key) && len(keys) < pruneAt {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == key })
	} else if len(keys) >= pruneAt {
		now := s.cfg.Now()
		kept := keys[:0]
		for _, k := range keys {
			if k == key {
				continue
			}
			cur, err := s.read(ctx, olricKey(k), false)
			if err != nil {
				return err
			}
			if cur.live(now) && cur.userID == user {
				kept = append(kept, k)
			}
		}
		keys = kept
	}
	keys = append(keys, key)
	physical := time.Now().Add(s.cfg.IndexLifetime).UnixMilli()
	return s.put(ctx, ikey, encodeIndex(physical, keys), physical)
}

// ListUser returns the live records bound to userID: it reads the user's
// index entry, then each record it lists, and keeps those still bound to
// the user (1 + n reads for n entries).
func (s *Store) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if userID == "" {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap("list user", err)
	}
	rctx, cancel := s.opCtx(ctx)
	keys, err := s.readIndex(rctx, userID)
	cancel()
	if err != nil {
		return nil, err
	}
	var out []store.Entry
	for _, k := range keys {
		rec, err := s.Load(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if rec.UserID == userID {
			out = append(out, store.Entry{Key: k, Record: rec})
		}
	}
	return out, nil
}

// DeleteUser deletes each live record bound to userID with a
// compare-and-delete (reloading it if it changed meanwhile) and returns how
// many it deleted.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	entries, err := s.ListUser(ctx, userID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		rec := e.Record
		for attempt := 0; ; attempt++ {
			err := s.Delete(ctx, e.Key, rec.Version)
			if err == nil {
				n++
				break
			}
			if !errors.Is(err, store.ErrConflict) || attempt == 3 {
				return n, err
			}
			if rec, err = s.Load(ctx, e.Key); errors.Is(err, store.ErrNotFound) {
				break
			} else if err != nil {
				return n, err
			}
			if rec.UserID != userID {
				break
			}
		}
	}
	return n, nil
}
