package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

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
// revocation store and list, and the JWKS handler (jwt format only).
type tokenStrategy struct {
	codec *token.Codec
	rev   *token.Revocations
	st    store.Store
	jwks  http.Handler

	closeOnce sync.Once
}

// openTokens reads the key ring and opens the revocation store.
func openTokens(ctx context.Context, cfg serveConfig, logger *slog.Logger) (*tokenStrategy, error) {
	ring, err := token.ReadRingFile(cfg.keys)
	if err != nil {
		return nil, err
	}
	// Tokens live at most as long as the longest session.
	maxLife := max(cfg.lifetime, session.DefaultRememberLifetime)
	fcfg := token.Config{Ring: ring, MaxLifetime: maxLife}
	var format token.Format
	t := &tokenStrategy{}
	if cfg.tokenFormat == "jwt" {
		format, err = token.NewJWT(fcfg)
		if err == nil {
			t.jwks, err = token.JWKSHandler(ring)
		}
	} else {
		format, err = token.NewSealed(fcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (file %s; --token-format %s)", err, cfg.keys, cfg.tokenFormat)
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
	if t.codec, err = token.NewCodec(format, t.rev); err != nil {
		t.Close()
		return nil, err
	}
	logger.Info("serve: token strategy", "format", cfg.tokenFormat, "key", ring.Current().ID,
		"alg", ring.Current().Alg, "keys", len(ring.Keys()), "revocations", cfg.revocations,
		"revocation_refresh", cfg.revRefresh)
	return t, nil
}

// Close stops the revocation loop, then closes its store. It may be
// called more than once.
func (t *tokenStrategy) Close() error {
	var err error
	t.closeOnce.Do(func() { err = errors.Join(t.rev.Close(), t.st.Close()) })
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
