package token

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"github.com/sessionkit/sessionkit/session"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// The sealed format, version 1, before base64url (no padding):
//
//	byte      version (1)
//	8 bytes   key ID (the kid's 16 hex digits, as bytes)
//	24 bytes  random nonce
//	rest      XChaCha20-Poly1305 ciphertext and 16-byte tag of the claims
//
// The associated data is the version, the key ID and the purpose, so a
// token cannot be moved to another purpose or key. The algorithm is the
// key's (a version names exactly one); nothing in the token chooses it.
// The claims, encrypted:
//
//	varint   iat, Unix milliseconds
//	varint   exp, Unix milliseconds
//	varint   auth_time, Unix milliseconds
//	uvarint  ID length, ID
//	uvarint  family length, family (empty: the same as the ID)
//	uvarint  user length, user
//	rest     session data
const (
	sealedV1       = 1
	sealedHeadLen  = 1 + kidLen/2 + chacha20poly1305.NonceSizeX
	sealedMinLen   = sealedHeadLen + chacha20poly1305.Overhead
	maxClaimString = 1024
)

var (
	b64       = base64.RawURLEncoding
	b64strict = base64.RawURLEncoding.Strict()
)

// Sealed is the sealed token format: claims encrypted and authenticated
// with XChaCha20-Poly1305 under the ring's current XC20P key. Nobody
// without the key can read or change a sealed token. Safe for concurrent
// use; immutable.
type Sealed struct {
	cfg  Config
	keys map[[kidLen / 2]byte]sealKey
}

// sealKey is a key with its associated data: version, key ID, purpose.
type sealKey struct {
	k   *Key
	aad []byte
}

var _ Format = (*Sealed)(nil)

// NewSealed returns the sealed format over cfg.Ring's XC20P keys.
func NewSealed(cfg Config) (*Sealed, error) {
	c, err := cfg.withDefaults(true)
	if err != nil {
		return nil, err
	}
	s := &Sealed{cfg: c, keys: map[[kidLen / 2]byte]sealKey{}}
	for _, k := range ringKeys(c.Ring, true) {
		aad := append(append([]byte{sealedV1}, k.kidRaw[:]...), c.Purpose...)
		s.keys[k.kidRaw] = sealKey{k, aad}
	}
	return s, nil
}

// Seal returns the sealed token of c.
func (s *Sealed) Seal(c Claims) (string, error) {
	if len(c.ID) > maxClaimString || len(c.UserID) > maxClaimString || len(c.Family) > maxClaimString {
		return "", fmt.Errorf("token: ID, family or user longer than %d bytes", maxClaimString)
	}
	key := signingKey(&s.cfg, &c)
	sk, ok := sealKey{}, key != nil
	if ok {
		sk, ok = s.keys[key.kidRaw]
	}
	if !ok {
		return "", fmt.Errorf("token: the key ring has no sealed key current at %v", c.Issued)
	}
	k := sk.k
	n := sealedHeadLen + 3*binary.MaxVarintLen64 + 3*binary.MaxVarintLen16 + len(c.ID) + len(c.Family) + len(c.UserID) +
		len(c.Data) + chacha20poly1305.Overhead
	buf := make([]byte, sealedHeadLen, n)
	buf[0] = sealedV1
	copy(buf[1:], k.kidRaw[:])
	rand.Read(buf[1+kidLen/2 : sealedHeadLen])
	pt := buf[sealedHeadLen:]
	pt = binary.AppendVarint(pt, c.Issued.UnixMilli())
	pt = binary.AppendVarint(pt, c.Expires.UnixMilli())
	pt = binary.AppendVarint(pt, c.AuthTime.UnixMilli())
	pt = binary.AppendUvarint(pt, uint64(len(c.ID)))
	pt = append(pt, c.ID...)
	family := c.Family
	if family == c.ID {
		family = "" // the common case: no renewal since the login
	}
	pt = binary.AppendUvarint(pt, uint64(len(family)))
	pt = append(pt, family...)
	pt = binary.AppendUvarint(pt, uint64(len(c.UserID)))
	pt = append(pt, c.UserID...)
	pt = append(pt, c.Data...)
	sealed := k.aead.Seal(pt[:0], buf[1+kidLen/2:sealedHeadLen], pt, sk.aad)
	raw := buf[:sealedHeadLen+len(sealed)]
	if n := b64.EncodedLen(len(raw)); n > s.cfg.MaxLen {
		return "", &session.TokenSizeError{Size: n, Limit: s.cfg.MaxLen}
	}
	return encodeString(raw), nil
}

// encodeString returns b in unpadded base64url, with one allocation
// (EncodeToString makes two: its buffer, then the string): the encodings
// of pieces of a multiple of 3 bytes join into the encoding of the whole.
func encodeString(b []byte) string {
	var sb strings.Builder
	sb.Grow(b64.EncodedLen(len(b)))
	var chunk [256]byte // encodes 192 bytes
	for len(b) > 0 {
		n := min(len(b), 192)
		b64.Encode(chunk[:], b[:n])
		sb.Write(chunk[:b64.EncodedLen(n)])
		b = b[n:]
	}
	return sb.String()
}

// Open returns the claims of a sealed token.
func (s *Sealed) Open(tok string) (Claims, error) {
	if len(tok) > s.cfg.MaxLen {
		return Claims{}, invalid("longer than the limit")
	}
	if b64.DecodedLen(len(tok)) < sealedMinLen {
		return Claims{}, invalid("too short")
	}
	// Go's base64 decoders skip CR and LF, so that a token of line breaks
	// decodes to nothing and any token could be spelled many ways: refuse
	// them before decoding (FuzzSealedOpen found the empty case).
	if strings.IndexByte(tok, '\r') >= 0 || strings.IndexByte(tok, '\n') >= 0 {
		return Claims{}, invalid("line breaks")
	}
	buf := make([]byte, b64.DecodedLen(len(tok)))
	n, err := b64strict.Decode(buf, []byte(tok))
	if err != nil {
		return Claims{}, invalid("not base64url")
	}
	if n < sealedMinLen {
		return Claims{}, invalid("too short")
	}
	raw := buf[:n]
	if raw[0] != sealedV1 {
		return Claims{}, invalid("unknown version")
	}
	sk, ok := s.keys[[kidLen / 2]byte(raw[1:1+kidLen/2])]
	if !ok {
		return Claims{}, invalid("unknown key")
	}
	k := sk.k
	pt, err := k.aead.Open(raw[sealedHeadLen:sealedHeadLen], raw[1+kidLen/2:sealedHeadLen], raw[sealedHeadLen:], sk.aad)
	if err != nil {
		return Claims{}, invalid("not authentic")
	}
	c, err := decodeSealedClaims(pt)
	if err != nil {
		return Claims{}, err
	}
	if err := checkTimes(&s.cfg, k, c.Issued, c.Expires, time.Time{}); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// decodeSealedClaims reads authenticated claims. Only a holder of the key
// can produce them, but they are still checked as untrusted input.
func decodeSealedClaims(pt []byte) (Claims, error) {
	var c Claims
	var ms [3]int64
	for i := range ms {
		v, n := binary.Varint(pt)
		if n <= 0 {
			return c, invalid("malformed claims")
		}
		ms[i], pt = v, pt[n:]
	}
	// The ID, family and user: where each is in strs, which one string
	// allocation then holds.
	strs := pt
	var spans [3][2]int
	off := 0
	for i := range spans {
		l, n := binary.Uvarint(pt)
		if n <= 0 || l > maxClaimString || l > uint64(len(pt)-n) {
			return c, invalid("malformed claims")
		}
		spans[i] = [2]int{off + n, off + n + int(l)}
		off, pt = spans[i][1], pt[n+int(l):]
	}
	all, base := string(strs[spans[0][0]:spans[2][1]]), spans[0][0]
	str := func(i int) string { return all[spans[i][0]-base : spans[i][1]-base] }
	c.Issued, c.Expires, c.AuthTime = time.UnixMilli(ms[0]), time.UnixMilli(ms[1]), time.UnixMilli(ms[2])
	c.ID, c.Family, c.UserID = str(0), str(1), str(2)
	if c.Family == "" {
		c.Family = c.ID
	}
	c.Data = pt
	return c, nil
}
