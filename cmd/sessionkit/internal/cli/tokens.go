package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
	"github.com/sessionkit/sessionkit/token"
)

// jwksPath is where serve publishes the key ring's public keys with
// --token-format jwt.
const jwksPath = "/.well-known/jwks.json"

// tokenStrategy is what --strategy token runs on: the codec, the
// revocation store and list, the JWKS handler (jwt format only), and the
// loop that re-reads the key-ring file.
type tokenStrategy struct {
	codec *token.Codec
	rev   *token.Revocations
	st    store.Store
	jwks  http.Handler // serves jwksCur

	path    string
	build   func(*token.Ring) (token.Format, http.Handler, error)
	format  *token.Switch
	jwksCur atomic.Pointer[http.Handler]
	logger  *slog.Logger

	now func() time.Time

	mu      sync.Mutex // serializes reload and checkSigning
	ring    *token.Ring
	last    []byte // the file as last read
	lastErr string // the last reading error logged
	signing string // the ID of the key that signs, as last logged

	hup       chan os.Signal
	stop      chan struct{}
	done      chan struct{} // closed when the reload loop has returned
	closeOnce sync.Once
}

// openTokens reads the key ring, opens the revocation store, and starts
// re-reading the ring file every cfg.keysReload and on SIGHUP.
func openTokens(ctx context.Context, cfg serveConfig, logger *slog.Logger) (*tokenStrategy, error) {
	// Tokens live at most as long as the longest session.
	maxLife := max(cfg.lifetime, session.DefaultRememberLifetime)
	t := &tokenStrategy{path: cfg.keys, logger: logger, now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	t.build = func(ring *token.Ring) (token.Format, http.Handler, error) {
		fcfg := token.Config{Ring: ring, MaxLifetime: maxLife}
		var (
			f    token.Format
			jwks http.Handler
			err  error
		)
		if cfg.tokenFormat == "jwt" {
			f, err = token.NewJWT(fcfg)
			if err == nil {
				jwks, err = token.JWKSHandler(ring)
			}
		} else {
			f, err = token.NewSealed(fcfg)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w (file %s; --token-format %s)", err, cfg.keys, cfg.tokenFormat)
		}
		return f, jwks, nil
	}
	data, err := readRingFile(cfg.keys)
	if err != nil {
		return nil, err
	}
	ring, err := token.ParseRing(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, cfg.keys)
	}
	format, jwks, err := t.build(ring)
	if err != nil {
		return nil, err
	}
	t.ring, t.last = ring, data
	if t.format, err = token.NewSwitch(format); err != nil {
		return nil, err
	}
	if jwks != nil {
		t.jwksCur.Store(&jwks)
		t.jwks = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*t.jwksCur.Load()).ServeHTTP(w, r) })
	}
	switch cfg.revocations {
	case "redis":
		rc, err := redisstore.ParseURL(cfg.redisURL)
		if err != nil {
			return nil, err
		}
		if t.st, err = redisstore.New(ctx, rc); err != nil {
			return nil, fmt.Errorf("revocation store: %w", err)
		}
	default:
		if t.st, err = memstore.New(memstore.Config{}); err != nil {
			return nil, err
		}
		logger.Warn("serve: token revocations are kept in this node's memory; other nodes will not see " +
			"this node's logouts (use --revocations redis for several nodes)")
	}
	t.rev, err = token.NewRevocations(ctx, token.RevocationConfig{
		Store: t.st, RefreshInterval: cfg.revRefresh, MaxLifetime: maxLife, Logger: logger,
	})
	if err != nil {
		t.st.Close()
		return nil, err
	}
	if t.codec, err = token.NewCodec(t.format, t.rev); err != nil {
		errors.Join(t.rev.Close(), t.st.Close()) //nolint:errcheck // the codec's error is the one to report
		return nil, err
	}
	t.hup = make(chan os.Signal, 1)
	signal.Notify(t.hup, syscall.SIGHUP)
	signing := ring.CurrentAt(t.now())
	t.signing = signing.ID
	logger.Info("serve: token strategy", append([]any{"format", cfg.tokenFormat, "key", signing.ID,
		"alg", signing.Alg, "keys", len(ring.Keys()), "revocations", cfg.revocations,
		"revocation_refresh", cfg.revRefresh, "keys_reload", cfg.keysReload}, pending(ring, t.now())...)...)
	go t.reloadLoop(cfg.keysReload)
	return t, nil
}

// pending returns log attributes of the key of ring that signs next after
// now, if one is published ahead of its activation: its ID and when.
func pending(ring *token.Ring, now time.Time) []any {
	if next, at, ok := nextSwitch(ring, now); ok {
		return []any{"next_key", next.ID, "next_key_signs_from", at}
	}
	return nil
}

// nextSwitch returns the key of ring that signs next after now and when
// it starts (its Created time), if one signs later than now.
func nextSwitch(ring *token.Ring, now time.Time) (*token.Key, time.Time, bool) {
	cur := ring.CurrentAt(now)
	for _, k := range ring.Keys() { // oldest first
		if k.Created.After(now) && ring.CurrentAt(k.Created) == k && k != cur {
			return k, k.Created, true
		}
	}
	return nil, time.Time{}, false
}

// checkSigning logs a change of the key that signs and seals new tokens:
// at a key's activation (Ring.RotateAt), the Format switches by itself;
// this only tells the operator. It returns how long until the next
// switch, or 0 if none is scheduled.
func (t *tokenStrategy) checkSigning() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if k := t.ring.CurrentAt(now); k != nil && k.ID != t.signing {
		t.logger.Info("serve: signing key switched", "key", k.ID, "alg", k.Alg, "previous", t.signing,
			"since", k.Created)
		t.signing = k.ID
	}
	if _, at, ok := nextSwitch(t.ring, now); ok {
		return max(at.Sub(now), time.Millisecond)
	}
	return 0
}

// reloadLoop calls reload every interval (never if it is 0) and on each
// SIGHUP, until Close; after each reload, and at the activation of a key
// published ahead (whatever the interval), it logs a change of the key
// that signs (checkSigning).
func (t *tokenStrategy) reloadLoop(interval time.Duration) {
	defer close(t.done)
	var tick <-chan time.Time
	if interval > 0 {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	arm := func() {
		timer.Stop()
		if d := t.checkSigning(); d > 0 {
			timer.Reset(d)
		}
	}
	arm()
	for {
		select {
		case <-t.stop:
			return
		case <-tick:
			t.reload()
		case <-t.hup:
			changed := t.reload()
			t.logger.Info("serve: SIGHUP: key ring re-read", "file", t.path, "changed", changed)
		case <-timer.C:
		}
		arm()
	}
}

// reload re-reads the key-ring file and, if it changed, switches the
// codec (and the JWKS) to the new ring, and reports whether it did. A
// file that cannot be read or used is logged, once per content or error,
// and the ring in use is kept. Tokens of keys that the new ring still has
// keep opening.
func (t *tokenStrategy) reload() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	data, err := readRingFile(t.path)
	if err != nil {
		if msg := err.Error(); msg != t.lastErr {
			t.lastErr = msg
			t.logger.Error("serve: cannot re-read the key ring; keeping the one in use", "err", err)
		}
		return false
	}
	t.lastErr = ""
	if bytes.Equal(data, t.last) {
		return false
	}
	t.last = data
	ring, err := token.ParseRing(data)
	if err != nil {
		err = fmt.Errorf("%w (file %s)", err, t.path)
	}
	var (
		f    token.Format
		jwks http.Handler
	)
	if err == nil {
		f, jwks, err = t.build(ring)
	}
	if err != nil {
		t.logger.Error("serve: the key ring file changed but cannot be used; keeping the one in use", "err", err)
		return false
	}
	t.format.Set(f) //nolint:errcheck // f is not nil
	if jwks != nil {
		t.jwksCur.Store(&jwks)
	}
	now := t.now()
	prev := t.ring.CurrentAt(now)
	t.ring = ring
	cur := ring.CurrentAt(now)
	t.logger.Info("serve: key ring reloaded", append([]any{"file", t.path, "key", cur.ID, "alg", cur.Alg,
		"keys", len(ring.Keys())}, pending(ring, now)...)...)
	if _, ok := ring.Lookup(prev.ID); !ok {
		t.logger.Warn("serve: the new key ring lacks the key that signed until now: its tokens are refused",
			"key", prev.ID)
	}
	return true
}

// readRingFile reads the key-ring file at path, up to one byte over
// token.MaxRingFileSize (so that ParseRing reports a file too large).
func readRingFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, token.MaxRingFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("token: reading %s: %w", path, err)
	}
	return data, nil
}

// Close stops re-reading the key ring and the revocation loop, then
// closes the revocation store. It may be called more than once.
func (t *tokenStrategy) Close() error {
	var err error
	t.closeOnce.Do(func() {
		signal.Stop(t.hup)
		close(t.stop)
		<-t.done
		err = errors.Join(t.rev.Close(), t.st.Close())
	})
	return err
}

// withJWKS answers GET and HEAD of jwksPath with the key ring's public
// keys, outside the session middleware.
func withJWKS(next, jwks http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == jwksPath {
			jwks.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
