// Package token is sessionkit's stateless strategy: the whole session
// travels in a token the client holds (a cookie for browsers, a bearer
// header for APIs), so no server stores it, and any instance that has the
// key ring can serve any request.
//
// # Use
//
//	ring, _ := token.ReadRingFile("keys.json")       // sessionkit keys new keys.json
//	format, _ := token.NewSealed(token.Config{Ring: ring})
//	rev, _ := token.NewRevocations(ctx, token.RevocationConfig{Store: redis})
//	codec, _ := token.NewCodec(format, rev)
//	m, _ := session.New(session.Config{Tokens: codec})  // the same API as with a Store
//
// # Formats
//
// Sealed (the default for cookies) encrypts and authenticates the session
// with XChaCha20-Poly1305 (golang.org/x/crypto): a version byte, the key
// ID, a random 24-byte nonce and the ciphertext; the version fixes the
// algorithm, so nothing in the token chooses it, and the purpose is
// authenticated with it. JWT signs a JWT with EdDSA (the default), ES256
// or HS256 (secrets of at least 32 bytes) for services that verify tokens
// themselves with the keys of JWKSHandler. Its signatures are made and
// checked, and its tokens parsed, by github.com/golang-jwt/jwt/v5, with
// the algorithms pinned to the ring's keys (so "none" is never allowed),
// strict base64 and no claims validation of its own: this package adds
// what a session token needs on top, a header that must be exactly the
// key's and a strict decoder of the claims (see JWT). The JWKS is written
// with encoding/json alone (RFC 7517, 7518 and 8037). (The JWTs were first
// built on github.com/go-jose/go-jose/v4, and the JWKS written by it; its
// per-token cost, mostly its own JSON package reading and writing the
// header several times, was about 1.6 times golang-jwt's.)
//
// # Strict by default
//
// Every token must carry an expiry; the leeway for clock skew is 5 s by
// default, at most 60 s, never negative; each key has one algorithm; a
// token is bound to its purpose (Config.Purpose), so that one kind is never
// accepted as another; tokens longer than Config.MaxLen (4096) are refused
// before any decoding. Every rejection is an error wrapping ErrInvalid and
// nothing else reaches the client: the session Manager answers as for a
// request without a session.
//
// # Keys and rotation
//
// A Ring holds keys with IDs ("kid"). Each key signs or seals new tokens
// from its Created time until its Retired time, one key at any instant
// (Ring.CurrentAt), and verifies tokens from the moment it is in the
// ring; a retired key only verifies tokens issued before its retirement
// (plus the leeway), until a rotation drops it after the longest token
// lifetime. A Format picks, for each token, the key current when it is
// issued, so it moves to a new key at its activation by itself.
//
// Rotation on several instances has two phases (Ring.RotateAt,
// `sessionkit keys rotate --activate-in 10s FILE`): the new key is added
// with a Created time in the future and the current key retired then.
// First give every instance the new ring and have it take it up: a
// Switch lets a running server replace its Format with one over the new
// ring (`sessionkit serve` re-reads its ring file every few seconds and
// on SIGHUP). Instances with the new ring accept the new key's tokens but
// all still sign with the old key, so no instance meets a token it cannot
// open. At the activation every instance with the new ring signs with the
// new key. If the activation comes before an instance has the new ring,
// that instance refuses the new key's tokens until it takes it up (its
// users get a new session), and the tokens it still makes with the old
// key more than the leeway after the activation are refused by the
// others; Ring.Rotate (activation at once) has that window always. Choose
// the activation delay longer than the slowest instance takes to read the
// ring, and, for JWTs verified elsewhere, longer than verifiers cache the
// JWKS. JWKSHandler publishes the public keys, those not signing yet
// included (never secret or private ones).
//
// # Revocation
//
// Revocations keeps revoked sessions (Session.Destroy: the session's
// family; Renew: the old ID; Login: the old family) and per-user cutoffs (Manager.DestroyUser: every
// token of the user whose session began before the cutoff) in a shared
// store.Store, each until the last token it concerns has expired. Every
// request checks an in-memory copy, with no network call; the copy is
// refreshed from the store every RevocationConfig.RefreshInterval (2 s by
// default), which bounds how long a revocation takes to reach the other
// instances: the refresh interval plus one store call.
//
// # API clients: access and refresh tokens
//
// An API keeps its session in a short-lived access token (a Manager with
// session.Header and an IdleTimeout of minutes) and gives the client a
// refresh token from a Refresher to get the next one. Refresh tokens are
// random, kept server-side as hashes in a shared store, and rotate: each
// works once and returns its successor. A used token presented again after
// RefreshConfig.Grace (10 s) reveals a theft, so its whole family (every
// token descending from one login) is revoked; within the grace window it
// gets another successor, so two tabs refreshing at once both keep working.
//
// # What tokens cannot do
//
// Until that delay has passed, another instance may still accept a
// revoked token and serve its holder. A token renewed there meanwhile is
// caught once the revocation arrives: a logout revokes the session's
// family (the ID it had at its creation or last login, which Renew keeps),
// not only its current ID. Two concurrent
// requests of one session that both change it are not merged, unlike with
// a store: each answers with its own token, and the client keeps the one
// that arrived last, so the other request's changes are lost. A token is
// valid until it expires even if a newer token of the same session exists
// (changing the session does not revoke its previous token). Tokens grow
// with the session: a session whose cookie would exceed 4096 bytes fails
// to save with session.TokenSizeError.
package token
