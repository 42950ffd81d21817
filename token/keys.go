package token

import (
	"bytes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Alg is the algorithm of a key. Each key has exactly one, fixed when it is
// made: a token is checked with its key's algorithm, never with one the
// token names.
type Alg string

// Algorithms.
const (
	// XC20P: XChaCha20-Poly1305 with a 256-bit key, for the sealed format
	// (encrypted and authenticated; package golang.org/x/crypto).
	XC20P Alg = "XC20P"
	// EdDSA: Ed25519 signatures, for JWTs. The default signing algorithm.
	EdDSA Alg = "EdDSA"
	// ES256: ECDSA on P-256 with SHA-256, for JWTs.
	ES256 Alg = "ES256"
	// HS256: HMAC-SHA-256 with a secret of at least 32 bytes, for JWTs
	// verified only by holders of the secret.
	HS256 Alg = "HS256"
)

// Algs returns every algorithm, sealed first.
func Algs() []Alg { return []Alg{XC20P, EdDSA, ES256, HS256} }

// sealed reports whether a is the sealed format's algorithm.
func (a Alg) sealed() bool { return a == XC20P }

// kidLen is the length of a key ID: 8 random bytes in lowercase hex.
const kidLen = 16

// MinHMACKeyLen is the shortest HS256 secret accepted (RFC 7518 section
// 3.2 asks for at least the hash's size).
const MinHMACKeyLen = 32

// Key is one key of a Ring. Its fields are read-only; a Key is safe for
// concurrent use.
type Key struct {
	// ID is the key's "kid": 16 lowercase hex digits, random.
	ID string
	// Alg is the one algorithm the key is used with.
	Alg Alg
	// Created is when the key starts to sign or seal: when it was made,
	// or a later time for a key published ahead of its use (Ring.RotateAt).
	// Retired, if not zero, is when a newer key replaces it: from then on
	// it only verifies tokens issued before Retired (see Ring). The key
	// signs from Created until Retired; a key retired at or before its
	// Created never signs. NewKey, Rotate and RotateAt set whole seconds
	// in UTC.
	Created time.Time
	Retired time.Time

	secret []byte           // XC20P, HS256
	priv   any              // ed25519.PrivateKey or *ecdsa.PrivateKey
	pub    any              // ed25519.PublicKey or *ecdsa.PublicKey
	kidRaw [kidLen / 2]byte // the sealed format's binary kid
	aead   cipher.AEAD      // XC20P
}

// NewKey makes a new random key for alg, created at now.
func NewKey(alg Alg, now time.Time) (*Key, error) {
	var kid [kidLen / 2]byte
	rand.Read(kid[:])
	var raw []byte
	switch alg {
	case XC20P, HS256:
		raw = make([]byte, 32)
		rand.Read(raw)
	case EdDSA:
		raw = make([]byte, ed25519.SeedSize)
		rand.Read(raw)
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		if raw, err = k.Bytes(); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
	default:
		return nil, fmt.Errorf("token: unknown algorithm %q (want one of %v)", alg, Algs())
	}
	return newKey(hex.EncodeToString(kid[:]), alg, raw, now.UTC().Truncate(time.Second), time.Time{})
}

// newKey builds a Key from its raw material, checking it.
func newKey(kid string, alg Alg, raw []byte, created, retired time.Time) (*Key, error) {
	k := &Key{ID: kid, Alg: alg, Created: created, Retired: retired}
	if len(kid) != kidLen {
		return nil, fmt.Errorf("token: key ID %q: want %d lowercase hex digits", kid, kidLen)
	}
	if _, err := hex.Decode(k.kidRaw[:], []byte(kid)); err != nil || hex.EncodeToString(k.kidRaw[:]) != kid {
		return nil, fmt.Errorf("token: key ID %q: want %d lowercase hex digits", kid, kidLen)
	}
	switch alg {
	case XC20P:
		if len(raw) != chacha20poly1305.KeySize {
			return nil, fmt.Errorf("token: key %s: an XC20P key has %d bytes, not %d", kid, chacha20poly1305.KeySize, len(raw))
		}
		k.secret = raw
		aead, err := chacha20poly1305.NewX(raw)
		if err != nil {
			return nil, fmt.Errorf("token: key %s: %w", kid, err)
		}
		k.aead = aead
	case HS256:
		if len(raw) < MinHMACKeyLen {
			return nil, fmt.Errorf("token: key %s: an HS256 secret needs at least %d bytes, not %d", kid, MinHMACKeyLen, len(raw))
		}
		k.secret = raw
	case EdDSA:
		if len(raw) != ed25519.SeedSize {
			return nil, fmt.Errorf("token: key %s: an EdDSA key is a %d-byte seed, not %d bytes", kid, ed25519.SeedSize, len(raw))
		}
		priv := ed25519.NewKeyFromSeed(raw)
		k.priv, k.pub = priv, priv.Public()
	case ES256:
		priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("token: key %s: not a P-256 private key: %w", kid, err)
		}
		k.priv, k.pub = priv, &priv.PublicKey
	default:
		return nil, fmt.Errorf("token: key %s: unknown algorithm %q (want one of %v)", kid, alg, Algs())
	}
	return k, nil
}

// raw returns the key's material in the ring file's form.
func (k *Key) raw() []byte {
	switch p := k.priv.(type) {
	case ed25519.PrivateKey:
		return p.Seed()
	case *ecdsa.PrivateKey:
		b, _ := p.Bytes()
		return b
	}
	return k.secret
}

// Public reports whether the key has a public half that may be published
// (EdDSA, ES256).
func (k *Key) Public() bool { return k.pub != nil }

// Ring is a set of keys with rotation. Each key signs or seals new tokens
// during its period, from its Created time until its Retired time (for
// ever if Retired is zero), and the periods do not overlap, so at most one
// key is current at any instant (CurrentAt). A key verifies tokens from
// the moment it is in the ring, even before its period starts (so that
// every instance can be given a new key before any instance signs with it,
// see RotateAt), and after its period only tokens issued before it was
// retired: rotating logs nobody out, and once a retired key's last token
// has expired Rotate drops it. A Ring is immutable and safe for concurrent
// use; Rotate and RotateAt return a new one.
type Ring struct {
	keys []*Key // by Created, oldest first
	byID map[string]*Key
}

// signs reports whether k has a period in which it signs (Created before
// Retired, or Retired zero).
func (k *Key) signs() bool { return k.Retired.IsZero() || k.Retired.After(k.Created) }

// NewRing returns a ring of keys, which must have distinct IDs, at most
// one key that is not retired (Current), and periods (Created to Retired)
// that do not overlap: at most one key current at any instant.
func NewRing(keys ...*Key) (*Ring, error) {
	r := &Ring{keys: slices.Clone(keys), byID: make(map[string]*Key, len(keys))}
	for _, k := range r.keys {
		if k == nil {
			return nil, errors.New("token: nil key")
		}
	}
	slices.SortStableFunc(r.keys, func(a, b *Key) int { return a.Created.Compare(b.Created) })
	current := 0
	var prev *Key // the signing key with the latest period so far
	for _, k := range r.keys {
		if _, dup := r.byID[k.ID]; dup {
			return nil, fmt.Errorf("token: key ID %s appears twice", k.ID)
		}
		r.byID[k.ID] = k
		if k.Retired.IsZero() {
			current++
		}
		if !k.signs() {
			continue
		}
		// Periods are sorted by their start: k overlaps an earlier
		// one if it starts before the latest end so far.
		if prev != nil && (prev.Retired.IsZero() || k.Created.Before(prev.Retired)) {
			until := "on"
			if !prev.Retired.IsZero() {
				until = "until " + prev.Retired.Format(time.RFC3339)
			}
			return nil, fmt.Errorf("token: keys %s and %s would both be current from %s %s; want at most one current key at any time",
				prev.ID, k.ID, k.Created.Format(time.RFC3339), until)
		}
		prev = k // it ends after prev, since it starts at or after prev's end
	}
	if current > 1 {
		return nil, fmt.Errorf("token: %d keys are current (not retired); want at most one", current)
	}
	return r, nil
}

// Keys returns the ring's keys, oldest first.
func (r *Ring) Keys() []*Key { return slices.Clone(r.keys) }

// Current returns the key that is not retired, or nil if every key is.
// It signs and seals new tokens from its Created time on, which may be
// in the future (see RotateAt): the key that signs at a given time is
// CurrentAt's. Rotate and RotateAt retire Current and add its successor.
func (r *Ring) Current() *Key {
	for _, k := range slices.Backward(r.keys) {
		if k.Retired.IsZero() {
			return k
		}
	}
	return nil
}

// CurrentAt returns the key that signs and seals new tokens at t: the key
// whose period (Created up to, not including, Retired) holds t. If none
// does, because t is before the first key's Created (an instance whose
// clock is behind the one that made the ring) or in a gap between two
// periods (left by a hand-made file), it returns the next key to sign, so
// that what is sealed at t still opens later. It returns nil if no key
// signs at t or later (every key is retired).
func (r *Ring) CurrentAt(t time.Time) *Key {
	for _, k := range slices.Backward(r.keys) {
		if k.signs() && !k.Created.After(t) && (k.Retired.IsZero() || t.Before(k.Retired)) {
			return k
		}
	}
	for _, k := range r.keys {
		if k.signs() && k.Created.After(t) {
			return k
		}
	}
	return nil
}

// Lookup returns the key with ID kid. The ID is only ever a map key:
// never a path, URL or anything else that is resolved.
func (r *Ring) Lookup(kid string) (*Key, bool) {
	k, ok := r.byID[kid]
	return k, ok
}

// Rotate returns a ring in which a new key of alg (the current key's
// algorithm if alg is ""; EdDSA if the ring is empty) is current at once
// and the previous current key is retired at now: RotateAt(alg, now, now,
// keep). Instances that do not have the new ring yet refuse its tokens;
// on several instances, RotateAt with a later activation avoids that.
func (r *Ring) Rotate(alg Alg, now time.Time, keep time.Duration) (*Ring, error) {
	return r.RotateAt(alg, now, now, keep)
}

// RotateAt returns a ring with a new key of alg (the current key's
// algorithm if alg is ""; EdDSA if the ring is empty) that signs from
// activate on (rounded up to a whole second; activate must not be before
// now): the two phases of a rotation on several instances. Until
// activate, the key is only published: instances that have the new ring
// accept its tokens, and every instance still signs with the previous
// key, which RotateAt retires at activate. Give every instance the new
// ring (and let verifiers that cache the JWKS refresh it) before
// activate, and no instance ever meets a token of a key it lacks.
//
// Every key that would still sign at activate is retired then; a key
// published by an earlier RotateAt whose activation has not come is thus
// retired at or before its Created and never signs (it still verifies
// the tokens issued before activate, in case an instance's clock ran
// ahead). Keys retired more than keep before now are dropped: keep must
// be at least the longest lifetime of a token (session.Config.Lifetime
// or RememberLifetime, whichever is longer), so that no live token loses
// its key.
func (r *Ring) RotateAt(alg Alg, now, activate time.Time, keep time.Duration) (*Ring, error) {
	if keep <= 0 {
		return nil, fmt.Errorf("token: Rotate: keep must be positive (the longest token lifetime), not %v", keep)
	}
	if activate.Before(now) {
		return nil, fmt.Errorf("token: RotateAt: activation %v is before now (%v)", activate.UTC(), now.UTC())
	}
	if alg == "" {
		alg = EdDSA
		if cur := r.Current(); cur != nil {
			alg = cur.Alg
		}
	}
	// Whole seconds: now rounded down (at once means from this second);
	// a later activation rounded up, never earlier than asked.
	at := activate.UTC().Truncate(time.Second)
	if at.Before(activate) && activate.After(now) {
		at = at.Add(time.Second)
	}
	now, activate = now.UTC().Truncate(time.Second), at
	nk, err := NewKey(alg, activate)
	if err != nil {
		return nil, err
	}
	var keys []*Key
	for _, k := range r.keys {
		if !k.Retired.IsZero() && now.Sub(k.Retired) > keep {
			continue
		}
		if k.Retired.IsZero() || k.Retired.After(activate) {
			c := *k
			c.Retired = activate
			k = &c
		}
		keys = append(keys, k)
	}
	return NewRing(append(keys, nk)...)
}

// The ring file: JSON, as written by Marshal and read by ParseRing.
//
//	{
//	  "sessionkit_key_ring": 1,
//	  "keys": [
//	    {"kid": "9f86d081884c7d65", "alg": "XC20P", "created": "2026-11-27T09:00:00Z",
//	     "retired": "2026-11-28T09:00:00Z", "key": "<base64url, no padding>"},
//	    ...
//	  ]
//	}
//
// "key" is the secret (XC20P, HS256), the 32-byte seed (EdDSA) or the
// 32-byte private scalar (ES256). The file holds secrets: keep it 0600.
type ringFile struct {
	Version int       `json:"sessionkit_key_ring"`
	Keys    []keyFile `json:"keys"`
}

type keyFile struct {
	ID      string     `json:"kid"`
	Alg     Alg        `json:"alg"`
	Created time.Time  `json:"created"`
	Retired *time.Time `json:"retired,omitempty"`
	Key     string     `json:"key"`
}

// ringFileVersion is the ring file's format version.
const ringFileVersion = 1

// MaxRingFileSize bounds the ring file ParseRing reads.
const MaxRingFileSize = 1 << 20

// maxRingKeys bounds the keys of a ring file.
const maxRingKeys = 1000

// Marshal returns the ring in the ring file's format.
func (r *Ring) Marshal() ([]byte, error) {
	f := ringFile{Version: ringFileVersion, Keys: make([]keyFile, 0, len(r.keys))}
	for _, k := range r.keys {
		kf := keyFile{ID: k.ID, Alg: k.Alg, Created: k.Created, Key: base64.RawURLEncoding.EncodeToString(k.raw())}
		if !k.Retired.IsZero() {
			t := k.Retired
			kf.Retired = &t
		}
		f.Keys = append(f.Keys, kf)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseRing reads a ring file. It rejects unknown fields, unknown
// versions and algorithms, malformed or weak keys, and files over
// MaxRingFileSize, with an error that names the problem but never a
// secret.
func ParseRing(data []byte) (*Ring, error) {
	if len(data) > MaxRingFileSize {
		return nil, fmt.Errorf("token: key ring file of %d bytes, over the limit of %d", len(data), MaxRingFileSize)
	}
	var f ringFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("token: key ring file is not valid: %w", err)
	}
	if dec.More() {
		return nil, errors.New("token: key ring file has data after its JSON object")
	}
	switch f.Version {
	case ringFileVersion:
	case 0:
		return nil, errors.New(`token: key ring file has no "sessionkit_key_ring" field: not a key ring made by 'sessionkit keys new'?`)
	default:
		return nil, fmt.Errorf("token: key ring file version %d; this build reads version %d", f.Version, ringFileVersion)
	}
	if len(f.Keys) > maxRingKeys {
		return nil, fmt.Errorf("token: key ring file has %d keys, over the limit of %d", len(f.Keys), maxRingKeys)
	}
	keys := make([]*Key, 0, len(f.Keys))
	for i, kf := range f.Keys {
		raw, err := base64.RawURLEncoding.Strict().DecodeString(kf.Key)
		if err != nil {
			return nil, fmt.Errorf("token: key ring file: key %d (%q): \"key\" is not unpadded base64url", i, kf.ID)
		}
		var retired time.Time
		if kf.Retired != nil {
			if kf.Retired.IsZero() {
				return nil, fmt.Errorf("token: key ring file: key %d (%q): zero \"retired\" time", i, kf.ID)
			}
			retired = kf.Retired.UTC()
		}
		if kf.Created.IsZero() {
			return nil, fmt.Errorf("token: key ring file: key %d (%q): \"created\" is missing", i, kf.ID)
		}
		k, err := newKey(kf.ID, kf.Alg, raw, kf.Created.UTC(), retired)
		if err != nil {
			return nil, fmt.Errorf("token: key ring file: key %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	return NewRing(keys...)
}
