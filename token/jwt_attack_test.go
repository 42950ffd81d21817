package token_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/token"
)

var enc = base64.RawURLEncoding

// material returns the private material of the ring's current key, read
// back from the ring file as an attacker who stole nothing could not.
func material(t testing.TB, r *token.Ring) (priv any, secret []byte) {
	t.Helper()
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Keys []struct {
			ID  string `json:"kid"`
			Alg string `json:"alg"`
			Key string `json:"key"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	cur := r.Current()
	for _, k := range f.Keys {
		if k.ID != cur.ID {
			continue
		}
		raw, err := enc.DecodeString(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		switch token.Alg(k.Alg) {
		case token.EdDSA:
			return ed25519.NewKeyFromSeed(raw), nil
		case token.ES256:
			p, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
			if err != nil {
				t.Fatal(err)
			}
			return p, nil
		default:
			return nil, raw
		}
	}
	t.Fatal("no current key")
	return nil, nil
}

// sign signs input the way alg does with priv or secret.
func sign(t testing.TB, alg string, priv any, secret, input []byte) []byte {
	t.Helper()
	switch alg {
	case "EdDSA":
		return ed25519.Sign(priv.(ed25519.PrivateKey), input)
	case "ES256":
		h := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, priv.(*ecdsa.PrivateKey), h[:])
		if err != nil {
			t.Fatal(err)
		}
		// The low-s form, the only one sessionkit accepts
		// (TestJWT_ES256canonical).
		if n := elliptic.P256().Params().N; s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
			s.Sub(n, s)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	case "HS256":
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
	return nil
}

// craft builds a compact JWS from raw header and payload JSON, signed by
// signFn (nil: empty signature).
func craft(header, payload string, signFn func(input []byte) []byte) string {
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	var sig []byte
	if signFn != nil {
		sig = signFn([]byte(input))
	}
	return input + "." + enc.EncodeToString(sig)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJWT_attacks feeds the known attacks on signed tokens to the verifier
// of each JWT algorithm: every one must be rejected with ErrInvalid.
func TestJWT_attacks(t *testing.T) {
	for _, alg := range []token.Alg{token.EdDSA, token.ES256, token.HS256} {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			f, r := newFormat(t, alg, c)
			kid := r.Current().ID
			priv, secret := material(t, r)
			real := func(in []byte) []byte { return sign(t, string(alg), priv, secret, in) }
			now := c.Now().Unix()
			good := map[string]any{"iss": "sessionkit", "aud": "sessionkit", "sub": "alice", "jti": "x",
				"iat": now, "exp": now + 600, "auth_time": now}
			with := func(k string, v any) string {
				m := map[string]any{}
				for k, v := range good {
					m[k] = v
				}
				if v == nil {
					delete(m, k)
				} else {
					m[k] = v
				}
				return mustJSON(t, m)
			}
			hdr := func(extra ...string) string {
				h := `{"alg":"` + string(alg) + `","kid":"` + kid + `","typ":"session+jwt"`
				for _, e := range extra {
					h += "," + e
				}
				return h + "}"
			}
			payload := mustJSON(t, good)

			// The control: a token crafted like the attacks, but honest.
			if _, err := f.Open(craft(hdr(), payload, real)); err != nil {
				t.Fatalf("control token rejected: %v", err)
			}

			attacks := map[string]string{}
			for _, none := range []string{"none", "None", "NONE", "nOnE", "none ", ""} {
				h := `{"alg":"` + none + `","kid":"` + kid + `","typ":"session+jwt"}`
				attacks["alg "+none+" unsigned"] = craft(h, payload, nil)
				attacks["alg "+none+" signed"] = craft(h, payload, real)
			}
			attacks["no alg"] = craft(`{"kid":"`+kid+`","typ":"session+jwt"}`, payload, real)

			// Algorithm confusion: the public key (in every common form)
			// as an HMAC secret.
			if pub, ok := publicForms(t, priv); ok {
				for form, key := range pub {
					h := `{"alg":"HS256","kid":"` + kid + `","typ":"session+jwt"}`
					attacks["HS256 with public key as "+form] = craft(h, payload, func(in []byte) []byte {
						return sign(t, "HS256", nil, key, in)
					})
				}
			}
			// Another algorithm than the key's, signed correctly for it.
			for _, other := range []string{"EdDSA", "ES256", "HS256", "RS256", "PS256", "ES384"} {
				if other == string(alg) {
					continue
				}
				attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
				h := `{"alg":"` + other + `","kid":"` + kid + `","typ":"session+jwt"}`
				attacks["alg "+other+" on an "+string(alg)+" key"] = craft(h, payload, func(in []byte) []byte {
					switch other {
					case "ES256":
						return sign(t, other, attacker, nil, in)
					case "EdDSA":
						return sign(t, other, edPriv, nil, in)
					}
					return sign(t, "HS256", nil, secret, in)
				})
			}

			// kid tricks: paths, injection, empty, another key's, with a
			// token HMACed with the empty key or signed by the real key.
			for _, k := range []string{"../../../../../dev/null", "/dev/null", "", " " + kid, kid + "\x00",
				strings.ToUpper(kid), "' OR '1'='1", "http://evil.example/key", kid + "/../" + kid} {
				h := mustJSON(t, map[string]string{"alg": string(alg), "kid": k, "typ": "session+jwt"})
				attacks["kid "+k+" real signature"] = craft(h, payload, real)
				h = mustJSON(t, map[string]string{"alg": "HS256", "kid": k, "typ": "session+jwt"})
				attacks["kid "+k+" empty HMAC key"] = craft(h, payload, func(in []byte) []byte { return sign(t, "HS256", nil, []byte{}, in) })
			}
			attacks["no kid"] = craft(`{"alg":"`+string(alg)+`","typ":"session+jwt"}`, payload, real)

			// Embedded keys: the attacker's own key, named in the header.
			_, attackerEd, _ := ed25519.GenerateKey(rand.Reader)
			attackerJWK := mustJSON(t, map[string]string{"kty": "OKP", "crv": "Ed25519",
				"x": enc.EncodeToString(attackerEd.Public().(ed25519.PublicKey))})
			attackerSign := func(in []byte) []byte { return ed25519.Sign(attackerEd, in) }
			attacks["embedded jwk, attacker-signed"] = craft(`{"alg":"EdDSA","kid":"`+kid+`","typ":"session+jwt","jwk":`+attackerJWK+`}`, payload, attackerSign)
			attacks["embedded jwk, no kid"] = craft(`{"alg":"EdDSA","typ":"session+jwt","jwk":`+attackerJWK+`}`, payload, attackerSign)
			attacks["embedded jwk, real signature"] = craft(hdr(`"jwk":`+attackerJWK), payload, real)
			cert := selfSigned(t, attackerEd)
			attacks["x5c, attacker-signed"] = craft(`{"alg":"EdDSA","kid":"`+kid+`","typ":"session+jwt","x5c":["`+cert+`"]}`, payload, attackerSign)
			attacks["x5c, real signature"] = craft(hdr(`"x5c":["`+cert+`"]`), payload, real)
			attacks["jku, attacker-signed"] = craft(`{"alg":"EdDSA","jku":"https://evil.example/jwks","kid":"a","typ":"session+jwt"}`, payload, attackerSign)
			attacks["jku, real signature"] = craft(hdr(`"jku":"https://evil.example/jwks"`), payload, real)
			attacks["x5u, real signature"] = craft(hdr(`"x5u":"https://evil.example/cert"`), payload, real)

			// Odd or missing expiry, and other claims.
			for name, v := range map[string]any{"missing": nil, "string": `"9999999999"`, "float": 1.5e9 + 0.5,
				"huge": 1e30, "negative": -1, "zero": 0, "null": json.RawMessage("null"), "array": []int64{now + 600},
				"past": now - 3600} {
				attacks["exp "+name] = craft(hdr(), with("exp", v), real)
			}
			attacks["iat missing"] = craft(hdr(), with("iat", nil), real)
			attacks["iat future"] = craft(hdr(), with("iat", now+3600), real)
			attacks["nbf future"] = craft(hdr(), with("nbf", now+3600), real)
			attacks["nbf string"] = craft(hdr(), with("nbf", "0"), real)
			attacks["jti missing"] = craft(hdr(), with("jti", nil), real)
			attacks["aud wrong"] = craft(hdr(), with("aud", "other"), real)
			attacks["aud missing"] = craft(hdr(), with("aud", nil), real)
			attacks["aud array"] = craft(hdr(), with("aud", []string{"sessionkit"}), real)
			attacks["iss wrong"] = craft(hdr(), with("iss", "evil"), real)
			attacks["iss missing"] = craft(hdr(), with("iss", nil), real)
			attacks["lifetime a year"] = craft(hdr(), with("exp", now+366*24*3600), real)
			attacks["unknown claim"] = craft(hdr(), with("admin", true), real)

			// Duplicate claims: two parsers could read different values.
			dup := strings.TrimSuffix(payload, "}")
			attacks["duplicate sub"] = craft(hdr(), dup+`,"sub":"admin"}`, real)
			attacks["duplicate exp"] = craft(hdr(), dup+`,"exp":`+mustJSON(t, now+9999)+`}`, real)
			attacks["case variant EXP"] = craft(hdr(), dup+`,"EXP":1}`, real)
			attacks["trailing data"] = craft(hdr(), payload+`{}`, real)
			attacks["payload not an object"] = craft(hdr(), `["a"]`, real)

			// Headers: crit, typ.
			attacks["crit unknown"] = craft(hdr(`"crit":["exp"],"exp":1`), payload, real)
			attacks["crit b64"] = craft(hdr(`"crit":["b64"],"b64":false`), payload, real)
			attacks["typ wrong"] = craft(`{"alg":"`+string(alg)+`","kid":"`+kid+`","typ":"refresh+jwt"}`, payload, real)
			attacks["typ JWT"] = craft(`{"alg":"`+string(alg)+`","kid":"`+kid+`","typ":"JWT"}`, payload, real)
			attacks["typ missing"] = craft(`{"alg":"`+string(alg)+`","kid":"`+kid+`"}`, payload, real)
			attacks["duplicate alg header"] = craft(`{"alg":"none","alg":"`+string(alg)+`","kid":"`+kid+`","typ":"session+jwt"}`, payload, real)
			attacks["nonce header"] = craft(hdr(`"nonce":"n"`), payload, real)

			// Tampering.
			tok := craft(hdr(), payload, real)
			parts := strings.Split(tok, ".")
			attacks["tampered payload"] = parts[0] + "." + enc.EncodeToString([]byte(with("sub", "admin"))) + "." + parts[2]
			attacks["tampered header"] = enc.EncodeToString([]byte(hdr(`"x":1`))) + "." + parts[1] + "." + parts[2]
			attacks["signature dropped"] = parts[0] + "." + parts[1] + "."
			attacks["signature truncated"] = parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4]
			attacks["signature padded"] = tok + "=="
			attacks["ECDSA zero signature"] = parts[0] + "." + parts[1] + "." + enc.EncodeToString(make([]byte, 64))
			attacks["zero signature, HS256 length"] = parts[0] + "." + parts[1] + "." + enc.EncodeToString(make([]byte, 32))
			attacks["JSON serialization"] = `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`
			attacks["whitespace"] = parts[0] + " ." + parts[1] + "." + parts[2]

			// Sizes and shapes.
			attacks["oversized"] = parts[0] + "." + strings.Repeat("A", 5000) + "." + parts[2]
			attacks["many dots"] = strings.Repeat(".", 3000)
			attacks["four segments"] = tok + ".x"
			attacks["two segments"] = parts[0] + "." + parts[1]
			attacks["empty"] = ""
			attacks["only dots"] = ".."

			for name, tok := range attacks {
				got, err := f.Open(tok)
				if !errors.Is(err, token.ErrInvalid) {
					t.Errorf("%s: accepted (%+v, err %v); want ErrInvalid", name, got, err)
				}
			}
		})
	}
}

// publicForms returns the public half of priv as an attacker might feed
// it to HMAC: raw bytes, PKIX DER, PEM, JWK JSON.
func publicForms(t testing.TB, priv any) (map[string][]byte, bool) {
	t.Helper()
	var pub any
	var raw []byte
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		pub = p.Public()
		raw = []byte(p.Public().(ed25519.PublicKey))
	case *ecdsa.PrivateKey:
		pub = &p.PublicKey
		var err error
		if raw, err = p.PublicKey.Bytes(); err != nil {
			t.Fatal(err)
		}
	default:
		return nil, false
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return map[string][]byte{"raw": raw, "DER": der, "PEM": pemBytes, "PEM without newline": []byte(strings.TrimSpace(string(pemBytes)))}, true
}

func selfSigned(t testing.TB, priv ed25519.PrivateKey) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// withS returns the ES256 token tok with the s of its signature r||s
// replaced by edit(s), written back in 32 bytes (the caller keeps it
// under 2^256).
func withS(t testing.TB, tok string, edit func(s *big.Int)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	sig, err := enc.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("not an ES256 signature: %v (%d bytes)", err, len(sig))
	}
	s := new(big.Int).SetBytes(sig[32:])
	edit(s)
	s.FillBytes(sig[32:])
	return parts[0] + "." + parts[1] + "." + enc.EncodeToString(sig)
}

// TestJWT_ES256canonical: an ECDSA signature (r, s) is also valid as
// (r, n-s); sessionkit seals only the form with s <= n/2 and opens only
// that one, so an ES256 token has one spelling. Every other spelling of a
// valid signature is refused: the high s, r or s out of range, DER
// instead of the fixed-width r||s, and other lengths.
func TestJWT_ES256canonical(t *testing.T) {
	c := newClock()
	f, r := newFormat(t, token.ES256, c)
	n := elliptic.P256().Params().N
	half := new(big.Int).Rsh(n, 1)
	claims := token.Claims{ID: "id", Family: "id", UserID: "alice", AuthTime: c.Now(), Issued: c.Now(), Expires: c.Now().Add(time.Hour)}

	// Sealing: s is in the lower half every time (a random s would be in
	// the upper half about every other time).
	var tok string
	for i := 0; i < 64; i++ {
		var err error
		if tok, err = f.Seal(claims); err != nil {
			t.Fatal(err)
		}
		sig, _ := enc.DecodeString(strings.Split(tok, ".")[2])
		if s := new(big.Int).SetBytes(sig[32:]); s.Cmp(half) > 0 || s.Sign() == 0 {
			t.Fatalf("sealed a signature with s = %x, not in (0, n/2]", s)
		}
		if _, err := f.Open(tok); err != nil {
			t.Fatalf("Open of a sealed token: %v", err)
		}
	}

	// Opening: the other spellings of the same valid signature.
	parts := strings.Split(tok, ".")
	sig, _ := enc.DecodeString(parts[2])
	rr, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	spell := func(r, s []byte) string { return parts[0] + "." + parts[1] + "." + enc.EncodeToString(append(r, s...)) }
	b32 := func(x *big.Int) []byte { return x.FillBytes(make([]byte, 32)) }
	der, err := asn1.Marshal(struct{ R, S *big.Int }{rr, s})
	if err != nil {
		t.Fatal(err)
	}
	// A signature made outside sessionkit by crypto/ecdsa, whichever half
	// its s is in, and its other spelling.
	priv, _ := material(t, r)
	input := []byte(parts[0] + "." + parts[1])
	h := sha256.Sum256(input)
	r2, s2, err := ecdsa.Sign(rand.Reader, priv.(*ecdsa.PrivateKey), h[:])
	if err != nil {
		t.Fatal(err)
	}
	low2, high2 := new(big.Int).Set(s2), new(big.Int).Sub(n, s2)
	if low2.Cmp(half) > 0 {
		low2, high2 = high2, low2
	}
	attacks := map[string]string{
		"high s (n-s)":             spell(b32(rr), b32(new(big.Int).Sub(n, s))),
		"high s, outside signer":   spell(b32(r2), b32(high2)),
		"s + n (over 32 bytes)":    parts[0] + "." + parts[1] + "." + enc.EncodeToString(append(b32(rr), new(big.Int).Add(s, n).Bytes()...)),
		"r + n":                    parts[0] + "." + parts[1] + "." + enc.EncodeToString(append(new(big.Int).Add(rr, n).Bytes(), b32(s)...)),
		"s = 0":                    spell(b32(rr), make([]byte, 32)),
		"r = 0":                    spell(make([]byte, 32), b32(s)),
		"r = n":                    spell(b32(n), b32(s)),
		"s = n":                    spell(b32(rr), b32(n)),
		"DER signature":            parts[0] + "." + parts[1] + "." + enc.EncodeToString(der),
		"leading zero byte":        parts[0] + "." + parts[1] + "." + enc.EncodeToString(append([]byte{0}, sig...)),
		"63 bytes":                 parts[0] + "." + parts[1] + "." + enc.EncodeToString(sig[:63]),
		"padded base64":            tok + "=",
		"standard base64 alphabet": parts[0] + "." + parts[1] + "." + base64.RawStdEncoding.EncodeToString(sig),
	}
	if !strings.ContainsAny(parts[2], "-_") {
		delete(attacks, "standard base64 alphabet") // the same bytes in both alphabets
	}
	for name, bad := range attacks {
		if _, err := f.Open(bad); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("%s: Open = %v; want ErrInvalid", name, err)
		}
	}
	if _, err := f.Open(spell(b32(r2), b32(low2))); err != nil {
		t.Errorf("the low-s spelling of a signature made by crypto/ecdsa: Open = %v; want it accepted", err)
	}
}
