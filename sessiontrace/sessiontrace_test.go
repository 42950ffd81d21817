package sessiontrace_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/sessiontrace"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func newProvider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, sr
}

// keyStore is a memstore that remembers every key it was called with, so
// that tests can check no key reaches a span. Embedding keeps memstore's
// optional interfaces.
type keyStore struct {
	*memstore.Store
	mu   sync.Mutex
	keys []string
}

func (s *keyStore) note(key string) {
	s.mu.Lock()
	s.keys = append(s.keys, key)
	s.mu.Unlock()
}

func (s *keyStore) Load(ctx context.Context, key string) (store.Record, error) {
	s.note(key)
	return s.Store.Load(ctx, key)
}

func (s *keyStore) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	s.note(key)
	return s.Store.Save(ctx, key, rec)
}

func (s *keyStore) Delete(ctx context.Context, key string, version uint64) error {
	s.note(key)
	return s.Store.Delete(ctx, key, version)
}

func (s *keyStore) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	s.note(key)
	return s.Store.Touch(ctx, key, version, expires)
}

// errStore answers every call with err.
type errStore struct{ err error }

func (s errStore) Load(context.Context, string) (store.Record, error) { return store.Record{}, s.err }
func (s errStore) Save(context.Context, string, store.Record) (uint64, error) {
	return 0, s.err
}
func (s errStore) Delete(context.Context, string, uint64) error { return s.err }
func (s errStore) Close() error                                 { return nil }

var errDisk = errors.New("disk on fire")

// attrs returns a span's attributes as a map.
func attrs(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := make(map[attribute.Key]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// request serves one request through h and returns the response.
func request(h http.Handler, method, path, cookie string) *http.Response {
	req := httptest.NewRequest(method, path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// requestSpans splits the spans of one request into its session span and
// its store spans, failing unless every store span is a child of the
// session span.
func requestSpans(t *testing.T, spans []sdktrace.ReadOnlySpan) (sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan) {
	t.Helper()
	var root sdktrace.ReadOnlySpan
	var stores []sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch {
		case s.Name() == sessiontrace.SessionSpanName:
			if root != nil {
				t.Fatalf("two %s spans", sessiontrace.SessionSpanName)
			}
			root = s
		case strings.HasPrefix(s.Name(), sessiontrace.StoreSpanPrefix):
			stores = append(stores, s)
		default:
			t.Errorf("unexpected span %q", s.Name())
		}
	}
	if root == nil {
		t.Fatalf("no %s span among %d", sessiontrace.SessionSpanName, len(spans))
	}
	if got := root.SpanKind(); got != trace.SpanKindInternal {
		t.Errorf("session span kind = %v; want %v", got, trace.SpanKindInternal)
	}
	for _, s := range stores {
		if got, want := s.Parent().SpanID(), root.SpanContext().SpanID(); got != want {
			t.Errorf("%s: parent span %v; want the session span %v", s.Name(), got, want)
		}
		if got, want := s.SpanContext().TraceID(), root.SpanContext().TraceID(); got != want {
			t.Errorf("%s: trace %v; want %v", s.Name(), got, want)
		}
		if got := s.SpanKind(); got != trace.SpanKindClient {
			t.Errorf("%s: kind = %v; want %v", s.Name(), got, trace.SpanKindClient)
		}
		op := strings.TrimPrefix(s.Name(), sessiontrace.StoreSpanPrefix)
		if got := attrs(s.Attributes())[sessiontrace.AttrStoreOp]; got != op {
			t.Errorf("%s: %s = %q; want %q", s.Name(), sessiontrace.AttrStoreOp, got, op)
		}
	}
	return root, stores
}

func spanNamed(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	t.Fatalf("no span %q; got %v", name, names)
	return nil
}

func hasEvent(s sdktrace.ReadOnlySpan, name string) bool {
	for _, e := range s.Events() {
		if e.Name == name {
			return true
		}
	}
	return false
}

// A real Manager over a traced memstore, behind Middleware: login, read,
// logout, and a request with the logged-out token.
func TestMiddleware_sessionLifecycle(t *testing.T) {
	tp, sr := newProvider(t)
	mem, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ks := &keyStore{Store: mem}
	defer ks.Close()
	m, err := session.New(session.Config{Store: sessiontrace.Store(ks, tp), Observer: sessiontrace.Events{}})
	if err != nil {
		t.Fatal(err)
	}
	const user = "alice-user-id"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Login(user)
		s.Set("cart", []string{"apple"})
	})
	mux.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
		cart, _ := session.Value[[]string](session.From(r), "cart")
		fmt.Fprint(w, cart)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy()
	})
	h := sessiontrace.Middleware(tp)(m.Handler(mux))

	var tokens []string
	step := func(method, path, cookie string) (sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan, string) {
		t.Helper()
		before := len(sr.Ended())
		resp := request(h, method, path, cookie)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: status %d; want 200", method, path, resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if c.Value != "" {
				tokens = append(tokens, c.Value)
				cookie = c.Name + "=" + c.Value
			}
		}
		root, stores := requestSpans(t, sr.Ended()[before:])
		a := attrs(root.Attributes())
		if a["http.request.method"] != method || a["url.path"] != path {
			t.Errorf("%s %s: session span attributes %v; want method and path", method, path, a)
		}
		return root, stores, cookie
	}

	root, stores, cookie := step("POST", "/login", "")
	if cookie == "" {
		t.Fatal("login set no cookie")
	}
	save := spanNamed(t, stores, "sessionkit.store.save")
	if got := attrs(save.Attributes())[sessiontrace.AttrStoreResult]; got != sessiontrace.ResultOK {
		t.Errorf("save result = %q; want %q", got, sessiontrace.ResultOK)
	}
	if !hasEvent(root, "sessionkit.session.created") {
		t.Errorf("login: no created event on the session span; events %v", root.Events())
	}

	_, stores, _ = step("GET", "/cart", cookie)
	load := spanNamed(t, stores, "sessionkit.store.load")
	if got := attrs(load.Attributes())[sessiontrace.AttrStoreResult]; got != sessiontrace.ResultOK {
		t.Errorf("load result = %q; want %q", got, sessiontrace.ResultOK)
	}

	root, stores, _ = step("POST", "/logout", cookie)
	spanNamed(t, stores, "sessionkit.store.delete")
	if !hasEvent(root, "sessionkit.session.destroyed") {
		t.Errorf("logout: no destroyed event on the session span; events %v", root.Events())
	}

	// The old token now names no session: a not-found load, which is an
	// answer, not an error.
	_, stores, _ = step("GET", "/cart", cookie)
	load = spanNamed(t, stores, "sessionkit.store.load")
	if got := attrs(load.Attributes())[sessiontrace.AttrStoreResult]; got != sessiontrace.ResultNotFound {
		t.Errorf("load result = %q; want %q", got, sessiontrace.ResultNotFound)
	}
	if got := load.Status().Code; got != codes.Unset {
		t.Errorf("not-found load status = %v; want %v", got, codes.Unset)
	}
	if n := len(load.Events()); n != 0 {
		t.Errorf("not-found load has %d events; want none", n)
	}

	// Nothing that names a session or a user reaches the spans.
	ks.mu.Lock()
	secrets := append(append([]string{user}, tokens...), ks.keys...)
	ks.mu.Unlock()
	if len(secrets) < 4 {
		t.Fatalf("collected %d tokens and keys; the test saw too little", len(secrets)-1)
	}
	for _, s := range sr.Ended() {
		values := []string{s.Name(), s.Status().Description}
		for _, kv := range s.Attributes() {
			values = append(values, kv.Value.String())
		}
		for _, e := range s.Events() {
			values = append(values, e.Name)
			for _, kv := range e.Attributes {
				values = append(values, kv.Value.String())
			}
		}
		for _, v := range values {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(v, secret) {
					t.Errorf("span %s carries %q, which contains a token, key or user ID", s.Name(), v)
				}
			}
		}
	}
}

// A failing store: the request fails, and its store span, a child of the
// session span, is an error with the error recorded.
func TestMiddleware_storeOutage(t *testing.T) {
	tp, sr := newProvider(t)
	m, err := session.New(session.Config{Store: sessiontrace.Store(errStore{errDisk}, tp)})
	if err != nil {
		t.Fatal(err)
	}
	h := sessiontrace.Middleware(tp)(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("k", 1)
	})))
	if got := request(h, "POST", "/x", "").StatusCode; got != http.StatusServiceUnavailable {
		t.Errorf("status %d; want 503", got)
	}
	_, stores := requestSpans(t, sr.Ended())
	save := spanNamed(t, stores, "sessionkit.store.save")
	if got := save.Status(); got.Code != codes.Error || got.Description != errDisk.Error() {
		t.Errorf("save status = %+v; want Error %q", got, errDisk)
	}
	if got := attrs(save.Attributes())[sessiontrace.AttrStoreResult]; got != sessiontrace.ResultOutage {
		t.Errorf("save result = %q; want %q", got, sessiontrace.ResultOutage)
	}
	if !hasEvent(save, "exception") {
		t.Errorf("save span has no exception event; events %v", save.Events())
	}
}

// FailOpen: the degraded event lands on the session span, with the result.
func TestEvents_degraded(t *testing.T) {
	tp, sr := newProvider(t)
	unavailable := fmt.Errorf("breaker: open: %w", store.ErrUnavailable)
	m, err := session.New(session.Config{
		Store:    sessiontrace.Store(errStore{unavailable}, tp),
		Observer: sessiontrace.Events{},
		FailOpen: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Get a well-formed token from a Manager over a working store.
	st, _ := memstore.New(memstore.Config{})
	defer st.Close()
	m0, _ := session.New(session.Config{Store: st})
	resp := request(m0.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("k", 1)
	})), "GET", "/", "")
	cookies := resp.Cookies()
	if len(cookies) == 0 {
		t.Fatal("no cookie")
	}

	h := sessiontrace.Middleware(tp)(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !session.From(r).Degraded() {
			t.Error("session not degraded")
		}
	})))
	if got := request(h, "GET", "/", cookies[0].Name+"="+cookies[0].Value).StatusCode; got != http.StatusOK {
		t.Errorf("status %d; want 200", got)
	}
	root, stores := requestSpans(t, sr.Ended())
	load := spanNamed(t, stores, "sessionkit.store.load")
	if got := load.Status().Code; got != codes.Error {
		t.Errorf("load status = %v; want %v", got, codes.Error)
	}
	var found bool
	for _, e := range root.Events() {
		if e.Name == "sessionkit.session.degraded" {
			found = true
			if got := attrs(e.Attributes)[sessiontrace.AttrStoreResult]; got != sessiontrace.ResultUnavailable {
				t.Errorf("degraded event result = %q; want %q", got, sessiontrace.ResultUnavailable)
			}
		}
	}
	if !found {
		t.Errorf("no degraded event on the session span; events %v", root.Events())
	}
}

func TestStore_result(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		err    error
		result string
		status codes.Code
	}{
		{"ok", context.Background(), nil, sessiontrace.ResultOK, codes.Unset},
		{"not_found", context.Background(), fmt.Errorf("x: %w", store.ErrNotFound), sessiontrace.ResultNotFound, codes.Unset},
		{"conflict", context.Background(), store.ErrConflict, sessiontrace.ResultConflict, codes.Unset},
		{"invalid_key", context.Background(), store.ErrInvalidKey, sessiontrace.ResultInvalidKey, codes.Unset},
		{"unsupported", context.Background(), store.ErrUnsupported, sessiontrace.ResultUnsupported, codes.Unset},
		{"closed", context.Background(), store.ErrClosed, sessiontrace.ResultClosed, codes.Unset},
		{"canceled", canceled, context.Canceled, sessiontrace.ResultCanceled, codes.Unset},
		{"unavailable", context.Background(), fmt.Errorf("breaker: %w", store.ErrUnavailable), sessiontrace.ResultUnavailable, codes.Error},
		{"outage", context.Background(), errDisk, sessiontrace.ResultOutage, codes.Error},
		{"deadline", context.Background(), context.DeadlineExceeded, sessiontrace.ResultOutage, codes.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, sr := newProvider(t)
			s := sessiontrace.Store(errStore{tt.err}, tp)
			if _, err := s.Load(tt.ctx, "key"); err != tt.err {
				t.Errorf("Load error = %v; want %v (unchanged)", err, tt.err)
			}
			spans := sr.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans; want 1", len(spans))
			}
			sp := spans[0]
			if got := attrs(sp.Attributes())[sessiontrace.AttrStoreResult]; got != tt.result {
				t.Errorf("result = %q; want %q", got, tt.result)
			}
			if got := sp.Status().Code; got != tt.status {
				t.Errorf("status = %v; want %v", got, tt.status)
			}
			if got, want := hasEvent(sp, "exception"), tt.status == codes.Error; got != want {
				t.Errorf("exception recorded = %v; want %v", got, want)
			}
		})
	}
}

// Store keeps exactly the optional interfaces of the store it wraps, and
// traces the optional calls too.
func TestStore_optionalInterfaces(t *testing.T) {
	tp, sr := newProvider(t)
	mem, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	s := sessiontrace.Store(mem, tp)
	tch, okT := s.(store.Toucher)
	ui, okU := s.(store.UserIndex)
	_, okN := s.(store.Notifier)
	if !okT || !okU || !okN {
		t.Fatalf("Toucher %v, UserIndex %v, Notifier %v; want all", okT, okU, okN)
	}
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	v, err := s.Save(ctx, "k", store.Record{Expires: exp, UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tch.Touch(ctx, "k", v, exp.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := ui.ListUser(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := ui.DeleteUser(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sp := range sr.Ended() {
		names = append(names, sp.Name())
	}
	want := []string{"sessionkit.store.save", "sessionkit.store.touch", "sessionkit.store.list_user", "sessionkit.store.delete_user"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("spans %v; want %v", names, want)
	}

	plain := sessiontrace.Store(errStore{}, tp)
	_, okT = plain.(store.Toucher)
	_, okU = plain.(store.UserIndex)
	_, okN = plain.(store.Notifier)
	if okT || okU || okN {
		t.Errorf("plain store: Toucher %v, UserIndex %v, Notifier %v; want none", okT, okU, okN)
	}
}

// A store span outside any request is a child of the caller's span.
func TestStore_parentFromContext(t *testing.T) {
	tp, sr := newProvider(t)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "job")
	sessiontrace.Store(errStore{}, tp).Delete(ctx, "k", 0)
	parent.End()
	sp := spanNamed(t, sr.Ended(), "sessionkit.store.delete")
	if got, want := sp.Parent().SpanID(), parent.SpanContext().SpanID(); got != want {
		t.Errorf("parent %v; want %v", got, want)
	}
}

// A nil TracerProvider means the global one.
func TestStore_nilProvider(t *testing.T) {
	tp, sr := newProvider(t)
	old := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(old) })

	sessiontrace.Store(errStore{}, nil).Load(context.Background(), "k")
	sessiontrace.Middleware(nil)(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	spanNamed(t, sr.Ended(), "sessionkit.store.load")
	spanNamed(t, sr.Ended(), sessiontrace.SessionSpanName)
}

func TestMiddleware_attributes(t *testing.T) {
	tp, sr := newProvider(t)
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	mux := http.NewServeMux()
	mux.Handle("GET /users/{id}", sessiontrace.Middleware(tp)(noop))
	outer := sessiontrace.Middleware(tp)(noop)

	tests := []struct {
		name string
		h    http.Handler
		req  *http.Request
		want map[attribute.Key]string
	}{
		{"plain", outer, httptest.NewRequest("GET", "/a/b?token=secret", nil),
			map[attribute.Key]string{"http.request.method": "GET", "url.path": "/a/b"}},
		{"nonstandard method", outer, httptest.NewRequest("BREW", "/pot", nil),
			map[attribute.Key]string{"http.request.method": "_OTHER", "url.path": "/pot"}},
		{"inside a mux route", mux, httptest.NewRequest("GET", "/users/7", nil),
			map[attribute.Key]string{"http.request.method": "GET", "url.path": "/users/7", "http.route": "GET /users/{id}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(sr.Ended())
			tt.h.ServeHTTP(httptest.NewRecorder(), tt.req)
			spans := sr.Ended()[before:]
			if len(spans) != 1 {
				t.Fatalf("%d spans; want 1", len(spans))
			}
			if got := attrs(spans[0].Attributes()); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("attributes %v; want %v", got, tt.want)
			}
		})
	}
}

// The request's handler sees the session span in its context, and a panic
// still ends it.
func TestMiddleware_spanInContext(t *testing.T) {
	tp, sr := newProvider(t)
	var inHandler trace.SpanContext
	h := sessiontrace.Middleware(tp)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHandler = trace.SpanContextFromContext(r.Context())
		panic(http.ErrAbortHandler)
	}))
	func() {
		defer func() { recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	sp := spanNamed(t, sr.Ended(), sessiontrace.SessionSpanName)
	if !inHandler.Equal(sp.SpanContext()) {
		t.Errorf("handler saw span %v; want %v", inHandler, sp.SpanContext())
	}
}

func TestEvents_noSpan(t *testing.T) {
	// No recording span: nothing to do, nothing to panic about.
	sessiontrace.Events{}.SessionEvent(context.Background(), session.Event{Kind: session.EventCreated})
	sessiontrace.Events{}.StoreCall(context.Background(), session.StoreCall{Op: store.OpNameLoad})
}

func TestEvents_count(t *testing.T) {
	tp, sr := newProvider(t)
	ctx, sp := tp.Tracer("test").Start(context.Background(), "job")
	sessiontrace.Events{}.SessionEvent(ctx, session.Event{Kind: session.EventUserRevoked, Count: 3})
	sp.End()
	evs := sr.Ended()[0].Events()
	if len(evs) != 1 || evs[0].Name != "sessionkit.session.user_revoked" {
		t.Fatalf("events %v; want one sessionkit.session.user_revoked", evs)
	}
	if got := attrs(evs[0].Attributes)[sessiontrace.AttrEventCount]; got != "3" {
		t.Errorf("count = %q; want 3", got)
	}
}
