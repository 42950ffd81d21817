package pgstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionkit/sessionkit/store"
)

// The operations of a notification's payload, which is
// "<op> <version> <key in hex>".
const (
	opSave   = 's'
	opTouch  = 't'
	opDelete = 'd'
	opExpire = 'e'
)

// maxChannel is the longest channel name PostgreSQL takes (NAMEDATALEN-1).
const maxChannel = 63

// Timing of the change feed's connection.
const (
	// feedHeartbeat is how long the listening connection may stay silent
	// before the store checks it with a ping.
	feedHeartbeat = 5 * time.Second
	// feedPing bounds that ping, and each attempt to connect.
	feedPing = 5 * time.Second
	// feedRetryMax bounds the pause between two attempts to connect.
	feedRetryMax = 5 * time.Second
)

// ApplicationName is the application_name of the connection on which a
// store with Config.Notify listens, as pg_stat_activity shows it.
const ApplicationName = "sessionkit pgstore listen"

// notifyChannel returns the notification channel of table (as
// Config.Table): the table's name as written ("sessionkit_sessions",
// "schema.table"), or, if that is longer than a channel name may be, its
// first 46 bytes, "_" and 16 hex digits of its FNV-1a hash. It holds only
// lower-case letters, digits, underscores and a dot.
func notifyChannel(table string) string {
	if table == "" {
		table = DefaultTable
	}
	if len(table) <= maxChannel {
		return table
	}
	h := fnv.New64a()
	h.Write([]byte(table))
	return fmt.Sprintf("%s_%016x", table[:maxChannel-17], h.Sum64())
}

// parsePayload decodes a notification the store's statements send.
func parsePayload(p string) (store.Event, bool) {
	if len(p) < 4 || p[1] != ' ' {
		return store.Event{}, false
	}
	var ev store.Event
	switch p[0] {
	case opSave:
		ev.Op = store.OpSave
	case opTouch:
		ev.Op = store.OpTouch
	case opDelete:
		ev.Op = store.OpDelete
	case opExpire:
		ev.Op = store.OpExpire
	default:
		return store.Event{}, false
	}
	v, k, ok := strings.Cut(p[2:], " ")
	if !ok {
		return store.Event{}, false
	}
	version, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return store.Event{}, false
	}
	key, err := hex.DecodeString(k)
	if err != nil || len(key) == 0 {
		return store.Event{}, false
	}
	ev.Version, ev.Key = version, string(key)
	return ev, true
}

// feed is the store's change feed: its subscribers and the goroutine that
// listens for them.
type feed struct {
	mu      sync.RWMutex
	subs    map[uint64]func(store.Event)
	next    uint64
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// publish calls every subscriber with ev.
func (f *feed) publish(ev store.Event) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, fn := range f.subs {
		fn(ev)
	}
}

// close stops the listening goroutine, if any, and waits for it to end.
func (f *feed) close() {
	f.mu.Lock()
	f.closed = true
	if f.cancel != nil {
		f.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Subscribe implements store.Notifier when Config.Notify is set: fn gets
// an event for every change to a record that a store with Notify on the
// same table makes, in commit order, from one goroutine (see
// "Notifications" in the package documentation). The first call opens the
// store's listening connection; if it cannot, Subscribe returns all the
// same and fn gets a store.OpReset once the connection is up. Without
// Config.Notify, Subscribe returns nil and fn is never called: the store
// has no change feed.
func (s *Store) Subscribe(fn func(store.Event)) (unsubscribe func()) {
	if !s.notify {
		return nil
	}
	f := &s.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || s.closed.Load() {
		return func() {}
	}
	if !f.started {
		f.started = true
		ctx, cancel := context.WithCancel(context.Background())
		f.cancel = cancel
		conn, err := s.listen(ctx)
		if err != nil {
			s.log.Warn("pgstore: change feed: cannot listen; retrying", "channel", s.channel, "err", err)
		}
		f.wg.Add(1)
		go s.runFeed(ctx, conn)
	}
	if f.subs == nil {
		f.subs = make(map[uint64]func(store.Event))
	}
	id := f.next
	f.next++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

// listen opens a connection with the pool's configuration and LISTENs on
// the store's channel: every transaction that commits after it returns is
// reported on the connection.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, feedPing)
	defer cancel()
	cfg := s.pool.Config().ConnConfig
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = make(map[string]string)
	}
	cfg.RuntimeParams["application_name"] = ApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

// runFeed delivers the notifications of conn (nil: not connected) until
// ctx ends. When the connection breaks it reports OpReset, connects again,
// with a pause growing from 50 ms to feedRetryMax between attempts, and
// reports OpReset again once it listens, before any notification of the
// new connection.
func (s *Store) runFeed(ctx context.Context, conn *pgx.Conn) {
	defer s.feed.wg.Done()
	for attempt := 0; ; {
		if conn == nil {
			var err error
			if conn, err = s.listen(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				if attempt == 0 {
					s.log.Warn("pgstore: change feed: cannot listen; retrying", "channel", s.channel, "err", err)
				}
				pause := min(50*time.Millisecond<<min(attempt, 10), feedRetryMax)
				attempt++
				select {
				case <-ctx.Done():
					return
				case <-time.After(pause):
				}
				continue
			}
			if attempt > 0 {
				s.log.Info("pgstore: change feed: listening again", "channel", s.channel, "attempts", attempt+1)
			}
			attempt = 0
			s.feed.publish(store.Event{Op: store.OpReset})
		}
		err := s.follow(ctx, conn)
		closeConn(conn)
		conn = nil
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("pgstore: change feed: connection lost; connecting again", "channel", s.channel, "err", err)
		s.feed.publish(store.Event{Op: store.OpReset})
	}
}

// follow delivers the notifications of conn until ctx ends or the
// connection fails: an error, or a ping unanswered after feedHeartbeat of
// silence.
func (s *Store) follow(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, feedHeartbeat)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, feedPing)
			err = conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("ping after %v of silence: %w", feedHeartbeat, err)
			}
		case err != nil:
			return err
		default:
			if ev, ok := parsePayload(n.Payload); ok {
				s.feed.publish(ev)
			} else {
				s.log.Debug("pgstore: change feed: notification not from a store", "channel", n.Channel, "payload", n.Payload)
			}
		}
	}
}
