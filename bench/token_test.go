package bench

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/token"
)

// The token benchmarks compare sessionkit's token formats with
// github.com/golang-jwt/jwt/v5 doing the same work: the same claims (issuer,
// audience, subject, ID, issued, expiry, auth time and the session's
// content, here the reference app's cart of 10 items), sealed or signed
// and then opened or verified with the same checks (algorithm pinned,
// expiry required, issuer and audience).

// cartItems is the reference app's cart used for the sizes and claims.
var cartItems = func() []string {
	items := make([]string, 10)
	for i := range items {
		items[i] = fmt.Sprintf("sku-%05d", 10001+i)
	}
	return items
}()

// cartSession returns the cookie of the reference app's session after a
// login and 10 items added to the cart, in format f.
func cartSession(b *testing.B, f token.Format) (cookie string) {
	b.Helper()
	h := refappOnTokens(b, f)
	var ck string
	do := func(method, path, body string) {
		req := httptest.NewRequest(method, "https://app.example"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if ck != "" {
			req.Header.Set("Cookie", "__Host-session="+ck)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		for _, c := range rec.Result().Cookies() {
			if c.Name == "__Host-session" {
				ck = c.Value
			}
		}
	}
	do("POST", "/login", `{"user":"alice@example.com"}`)
	for _, it := range cartItems {
		do("POST", "/cart", `{"item":"`+it+`"}`)
	}
	return ck
}

func refappOnTokens(b *testing.B, f token.Format) http.Handler {
	b.Helper()
	m := tokenManager(b, f)
	h, err := refapp.New(refapp.Config{Node: "n1", Strategy: "token", Manager: m})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func tokenManager(b *testing.B, f token.Format) *session.Manager {
	b.Helper()
	mem, err := memstore.New(memstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mem.Close() })
	rev, err := token.NewRevocations(b.Context(), token.RevocationConfig{Store: mem})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rev.Close() })
	codec, err := token.NewCodec(f, rev)
	if err != nil {
		b.Fatal(err)
	}
	m, err := session.New(session.Config{Tokens: codec, Route: "n1"})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func newTokenFormat(b *testing.B, alg token.Alg) token.Format {
	b.Helper()
	k, err := token.NewKey(alg, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	r, err := token.NewRing(k)
	if err != nil {
		b.Fatal(err)
	}
	var f token.Format
	if alg == token.XC20P {
		f, err = token.NewSealed(token.Config{Ring: r})
	} else {
		f, err = token.NewJWT(token.Config{Ring: r})
	}
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// benchClaims are the claims both libraries carry: the 10-item cart's
// session content (taken from a sealed cookie of the reference app).
func benchClaims(b *testing.B) token.Claims {
	b.Helper()
	f := newTokenFormat(b, token.XC20P)
	c, err := f.Open(cartSession(b, f))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	c.Issued, c.Expires = now.Truncate(time.Second), now.Add(30*time.Minute).Truncate(time.Second)
	return c
}

// golangJWTClaims are the same claims for golang-jwt.
type golangJWTClaims struct {
	jwt.RegisteredClaims
	AuthTime int64  `json:"auth_time"`
	Data     []byte `json:"sk,omitempty"`
}

type golangJWT struct {
	method    jwt.SigningMethod
	signKey   any
	verifyKey any
	parser    *jwt.Parser
}

func newGolangJWT(b *testing.B, alg string) *golangJWT {
	b.Helper()
	g := &golangJWT{parser: jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithExpirationRequired(),
		jwt.WithIssuer("sessionkit"), jwt.WithAudience("sessionkit"), jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Second))}
	switch alg {
	case "HS256":
		key := make([]byte, 32)
		rand.Read(key)
		g.method, g.signKey, g.verifyKey = jwt.SigningMethodHS256, key, key
	case "EdDSA":
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		g.method, g.signKey, g.verifyKey = jwt.SigningMethodEdDSA, priv, pub
	case "ES256":
		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		g.method, g.signKey, g.verifyKey = jwt.SigningMethodES256, priv, &priv.PublicKey
	}
	return g
}

func (g *golangJWT) sign(c token.Claims) (string, error) {
	return jwt.NewWithClaims(g.method, &golangJWTClaims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "sessionkit", Audience: jwt.ClaimStrings{"sessionkit"},
			Subject: c.UserID, ID: c.ID, IssuedAt: jwt.NewNumericDate(c.Issued), ExpiresAt: jwt.NewNumericDate(c.Expires)},
		AuthTime: c.AuthTime.Unix(), Data: c.Data,
	}).SignedString(g.signKey)
}

func (g *golangJWT) verify(tok string) (*golangJWTClaims, error) {
	var c golangJWTClaims
	_, err := g.parser.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return g.verifyKey, nil })
	return &c, err
}

// BenchmarkTokenRoundTrip: seal (or sign) a session's claims, then open
// (or verify) the token: what one request that changes its session costs
// in the token format.
func BenchmarkTokenRoundTrip(b *testing.B) {
	c := benchClaims(b)
	for _, alg := range []token.Alg{token.XC20P, token.HS256, token.EdDSA, token.ES256} {
		format := string(alg)
		if alg == token.XC20P {
			format = "sealed"
		}
		b.Run("format="+format+"/impl=sessionkit", func(b *testing.B) {
			f := newTokenFormat(b, alg)
			tok, _ := f.Seal(c)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				tok, err := f.Seal(c)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.Open(tok); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
			b.ReportMetric(float64(len(tok)), "token-bytes") // after the loop, which resets metrics
		})
		if alg == token.XC20P {
			continue
		}
		b.Run("format="+format+"/impl=golang-jwt", func(b *testing.B) {
			g := newGolangJWT(b, string(alg))
			tok, _ := g.sign(c)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				tok, err := g.sign(c)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := g.verify(tok); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
			b.ReportMetric(float64(len(tok)), "token-bytes")
		})
	}
}

// BenchmarkTokenMiddleware: the whole middleware on a request whose cookie
// holds the reference app's session with its 10-item cart: read and check
// the token, run a handler that reads the cart and writes a counter, and
// answer with the new token in Set-Cookie. sessionkit's Manager on the
// sealed format (with an empty revocation list in memory) beside a plain
// golang-jwt HS256 cookie middleware doing the same.
func BenchmarkTokenMiddleware(b *testing.B) {
	run := func(b *testing.B, h http.Handler, cookie string) {
		req := httptest.NewRequest("GET", "https://app.example/cart", nil)
		req.Header.Set("Cookie", "__Host-session="+cookie)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		setCookie := rec.Header().Get("Set-Cookie")
		if rec.Code != 200 || rec.Body.String() != "10" || setCookie == "" {
			b.Fatalf("got %d %q, Set-Cookie %q", rec.Code, rec.Body, setCookie)
		}
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			rec := &discardWriter{h: http.Header{}}
			h.ServeHTTP(rec, req)
			if rec.code != 200 {
				b.Fatal(rec.code)
			}
		}
		cpu.report(b)
		b.ReportMetric(float64(len(setCookie)), "set-cookie-bytes")
	}
	for _, alg := range []token.Alg{token.XC20P, token.HS256} {
		name := "sessionkit-sealed"
		if alg == token.HS256 {
			name = "sessionkit-jwt-HS256"
		}
		b.Run("impl="+name, func(b *testing.B) {
			f := newTokenFormat(b, alg)
			cookie := cartSession(b, f)
			m := tokenManager(b, f)
			visits := 0
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				cart, _ := session.Value[[]string](s, "cart")
				visits++
				s.Set("visits", visits)
				fmt.Fprint(w, len(cart))
			}))
			run(b, h, cookie)
		})
	}
	b.Run("impl=golang-jwt-HS256", func(b *testing.B) {
		g := newGolangJWT(b, "HS256")
		c := benchClaims(b)
		id, _ := sid.New("n1")
		tok, err := g.signCart(&cartClaims{Subject: c.UserID, ID: id.String(), Cart: cartItems})
		if err != nil {
			b.Fatal(err)
		}
		visits := 0
		h := g.middleware(func(w http.ResponseWriter, r *http.Request, s *cartClaims) {
			visits++
			s.Visits = visits
			fmt.Fprint(w, len(s.Cart))
		})
		run(b, h, tok)
	})
}

// cartClaims is the session of the golang-jwt cookie middleware.
type cartClaims struct {
	jwt.RegisteredClaims
	Subject string   `json:"sub"`
	ID      string   `json:"jti"`
	Cart    []string `json:"cart"`
	Visits  int      `json:"visits"`
}

func (g *golangJWT) signCart(c *cartClaims) (string, error) {
	now := time.Now()
	c.Issuer, c.Audience = "sessionkit", jwt.ClaimStrings{"sessionkit"}
	c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(now), jwt.NewNumericDate(now.Add(30*time.Minute))
	return jwt.NewWithClaims(g.method, c).SignedString(g.signKey)
}

// middleware is a plain golang-jwt cookie session: verify the cookie's
// JWT, run next, sign the changed claims into a new cookie.
func (g *golangJWT) middleware(next func(http.ResponseWriter, *http.Request, *cartClaims)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s cartClaims
		if ck, err := r.Cookie("__Host-session"); err == nil {
			if _, err := g.parser.ParseWithClaims(ck.Value, &s, func(*jwt.Token) (any, error) { return g.verifyKey, nil }); err != nil {
				s = cartClaims{}
			}
		}
		// The answer is buffered so that the cookie can still be set.
		bw := &bufferedWriter{ResponseWriter: w}
		next(bw, r, &s)
		tok, err := g.signCart(&s)
		if err != nil {
			http.Error(w, "session error", http.StatusInternalServerError)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "__Host-session", Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		w.Write(bw.buf)
	})
}

type bufferedWriter struct {
	http.ResponseWriter
	buf []byte
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	return len(p), nil
}
func (b *bufferedWriter) WriteHeader(int) {}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = 200
	}
	return len(p), nil
}
func (d *discardWriter) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}

// BenchmarkTokenCartCookie reports (as cookie-bytes) the cookie value of the
// reference app's logged-in session with its 10-item cart in each format.
func BenchmarkTokenCartCookie(b *testing.B) {
	for _, alg := range token.Algs() {
		b.Run("format="+string(alg), func(b *testing.B) {
			ck := cartSession(b, newTokenFormat(b, alg))
			for b.Loop() {
			}
			b.ReportMetric(float64(len(ck)), "cookie-bytes") // after the loop, which resets metrics
		})
	}
}
