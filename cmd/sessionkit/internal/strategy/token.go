package strategy

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

// DefaultKeysReload is the default of --keys-reload, how often serve
// re-reads its key-ring file: the default leeway of token checks, so that
// a node still signing with a key another node has just seen retired
// issues tokens that node accepts (a retired key verifies tokens issued
// up to its retirement plus the leeway).
const DefaultKeysReload = token.DefaultLeeway

// jwksPath is where a node publishes the key ring's public keys with
// --token-format jwt.
const jwksPath = "/.well-known/jwks.json"

// tokenStrategy is stateless tokens: the session sealed (or signed) in
// its cookie, logouts in a revocation list every node re-reads.
var tokenStrategy = Strategy{
	Name:   "token",
	What:   "stateless: the session sealed in its cookie (XChaCha20-Poly1305), logouts in a shared revocation list",
	Shared: true,
	Flags:  []*Flag{keysFlag, keysReloadFlag, tokenFormatFlag, revocationsFlag, revocationRefreshFlag, redisFlag},
	uses:   func(flag string, s *Settings) bool { return flag != "redis" || s.Revocations == "redis" },
	mode:   func(s *Settings) string { return " with --revocations " + s.Revocations },
	check:  checkTokens,
	open: func(ctx context.Context, n *Node) (*Sessions, error) {
		t, err := openTokens(ctx, n)
		if err != nil {
			return nil, err
		}
		s := &Sessions{Tokens: t.codec, logger: n.logger(), shut: func(log *slog.Logger) {
			if err := t.Close(); err != nil {
				log.Warn("serve: closing the revocation store", "err", err)
			}
		}}
		if t.jwks != nil {
			s.routes = map[string]http.Handler{jwksPath: t.jwks}
		}
		return s, nil
	},
	testbed: tokenTestbed,
	plan:    tokenPlan,
}

var (
	keysFlag = &Flag{Name: "keys", When: "--strategy token",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.Keys, name, "",
				"key-ring `file` for --strategy token (create one with 'sessionkit keys new FILE');\n"+
					"        every node of one app needs the same file")
		}}
	keysReloadFlag = &Flag{Name: "keys-reload", When: "--strategy token",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.Duration(&s.KeysReload, name, DefaultKeysReload,
				"how often to re-read --keys: a changed ring (sessionkit keys rotate) is used\n"+
					"        at once, with no restart; 0: only on SIGHUP, which always re-reads it")
		}}
	tokenFormatFlag = &Flag{Name: "token-format", When: "--strategy token",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.TokenFormat, name, "sealed",
				"`format` of --strategy token: sealed (encrypted cookie, XC20P keys) or jwt\n"+
					"        (signed, readable by other services; EdDSA, ES256 or HS256 keys)")
		}}
	revocationsFlag = &Flag{Name: "revocations", When: "--strategy token",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.Revocations, name, "memory",
				"`store` of token revocations (logout): memory (this node only) or redis\n"+
					"        (shared by every node using the same --redis)")
		}}
	revocationRefreshFlag = &Flag{Name: "revocation-refresh", When: "--strategy token",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.Duration(&s.RevocationRefresh, name, token.DefaultRefreshInterval,
				"how often each node re-reads the revocation list: the bound on how long a\n"+
					"        logout on one node takes to reach the others")
		}}
)

func checkTokens(s *Settings) error {
	switch {
	case s.Keys == "":
		return errors.New("--strategy token needs --keys FILE (create one with 'sessionkit keys new FILE')")
	case s.TokenFormat != "sealed" && s.TokenFormat != "jwt":
		return &FlagError{"token-format", s.TokenFormat, "want sealed or jwt"}
	case s.Revocations != "memory" && s.Revocations != "redis":
		return &FlagError{"revocations", s.Revocations, "want memory or redis"}
	case s.RevocationRefresh <= 0:
		return &FlagError{"revocation-refresh", s.RevocationRefresh.String(), "must be positive"}
	case s.KeysReload < 0:
		return &FlagError{"keys-reload", s.KeysReload.String(), "must be 0 (only on SIGHUP) or positive"}
	}
	return nil
}

// maxTokenLifetime is how long node n's tokens may live: as long as its
// longest session.
func maxTokenLifetime(n *Node) time.Duration {
	lifetime := n.Lifetime
	if lifetime <= 0 {
		lifetime = session.DefaultLifetime
	}
	return max(lifetime, session.DefaultRememberLifetime)
}

// newFormat returns the token format named format over ring, and with
// jwt the ring's JWKS handler.
func newFormat(ring *token.Ring, format string, maxLife time.Duration) (token.Format, http.Handler, error) {
	cfg := token.Config{Ring: ring, MaxLifetime: maxLife}
	if format != "jwt" {
		f, err := token.NewSealed(cfg)
		if err != nil {
			return nil, nil, err
		}
		return f, nil, nil
	}
	f, err := token.NewJWT(cfg)
	if err != nil {
		return nil, nil, err
	}
	jwks, err := token.JWKSHandler(ring)
	if err != nil {
		return nil, nil, err
	}
	return f, jwks, nil
}

// newCodec returns node n's token codec on format, with its revocation
// list in st (through n.Wrap), refreshed every
// n.Settings.RevocationRefresh. The caller closes the list, then st.
func newCodec(ctx context.Context, n *Node, format token.Format, st store.Store) (*token.Codec, *token.Revocations, error) {
	rev, err := token.NewRevocations(ctx, token.RevocationConfig{
		Store: n.wrap(st), RefreshInterval: n.Settings.RevocationRefresh, MaxLifetime: maxTokenLifetime(n),
		Logger: n.logger(),
	})
	if err != nil {
		return nil, nil, err
	}
	codec, err := token.NewCodec(format, rev)
	if err != nil {
		rev.Close()
		return nil, nil, err
	}
	return codec, rev, nil
}

// tokenTestbed gives every node the same key ring, new for the testbed,
// and one shared revocation store: a memstore in this process, standing
// for the Redis the nodes of a real deployment share.
func tokenTestbed(_ context.Context, c *TestbedConfig) (*Testbed, error) {
	ring, err := newLabRing()
	if err != nil {
		return nil, err
	}
	shared, err := memstore.New(memstore.Config{})
	if err != nil {
		return nil, err
	}
	open := func(ctx context.Context, _ int, n *Node) (*Sessions, error) {
		n.Settings = c.Settings
		format, _, err := newFormat(ring, "sealed", maxTokenLifetime(n))
		if err != nil {
			return nil, err
		}
		codec, rev, err := newCodec(ctx, n, format, shared)
		if err != nil {
			return nil, err
		}
		return &Sessions{Tokens: codec, logger: n.logger(), shut: func(*slog.Logger) { rev.Close() }}, nil
	}
	return &Testbed{open: open, close: func() { shared.Close() }}, nil
}

// newLabRing returns a new key ring of one sealing key, for a lab's nodes.
func newLabRing() (*token.Ring, error) {
	key, err := token.NewKey(token.XC20P, time.Now())
	if err != nil {
		return nil, err
	}
	return token.NewRing(key)
}

// tokenNode is what a served token node runs on: the codec, the
// revocation store and list, the JWKS handler (jwt format only), and the
// loop that re-reads the key-ring file.
type tokenNode struct {
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

	hup  chan os.Signal
	stop chan struct{}
	done chan struct{} // closed when the reload loop has returned
}

// openTokens reads the key ring, opens the revocation store, and starts
// re-reading the ring file every n.Settings.KeysReload and on SIGHUP.
func openTokens(ctx context.Context, n *Node) (*tokenNode, error) {
	cfg, logger, maxLife := n.Settings, n.logger(), maxTokenLifetime(n)
	t := &tokenNode{path: cfg.Keys, logger: logger, now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	t.build = func(ring *token.Ring) (token.Format, http.Handler, error) {
		f, jwks, err := newFormat(ring, cfg.TokenFormat, maxLife)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (file %s; --token-format %s)", err, cfg.Keys, cfg.TokenFormat)
		}
		return f, jwks, nil
	}
	data, err := readRingFile(cfg.Keys)
	if err != nil {
		return nil, err
	}
	ring, err := token.ParseRing(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, cfg.Keys)
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
	switch cfg.Revocations {
	case "redis":
		rc, err := redisstore.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		if n.Timeout > 0 {
			rc.Timeout = n.Timeout
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
	if t.codec, t.rev, err = newCodec(ctx, n, t.format, t.st); err != nil {
		t.st.Close()
		return nil, err
	}
	t.hup = make(chan os.Signal, 1)
	signal.Notify(t.hup, syscall.SIGHUP)
	signing := ring.CurrentAt(t.now())
	t.signing = signing.ID
	logger.Info("serve: token strategy", append([]any{"format", cfg.TokenFormat, "key", signing.ID,
		"alg", signing.Alg, "keys", len(ring.Keys()), "revocations", cfg.Revocations,
		"revocation_refresh", cfg.RevocationRefresh, "keys_reload", cfg.KeysReload}, pending(ring, t.now())...)...)
	go t.reloadLoop(cfg.KeysReload)
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
func (t *tokenNode) checkSigning() time.Duration {
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
func (t *tokenNode) reloadLoop(interval time.Duration) {
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
func (t *tokenNode) reload() bool {
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
// closes the revocation store. Call it once (Sessions.Close does).
func (t *tokenNode) Close() error {
	signal.Stop(t.hup)
	close(t.stop)
	<-t.done
	return errors.Join(t.rev.Close(), t.st.Close())
}
