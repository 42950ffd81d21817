package refapp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
)

// cartKey is the session key holding the cart, a []string.
const cartKey = "cart"

// Config configures the reference app. New copies it.
type Config struct {
	// Node is the node's name, sent as the X-Node header of every response
	// and in the answers. Required: ASCII letters, digits, '-' and '_', at
	// most sid.MaxRouteLen bytes (the rules of a session route tag, which
	// it usually also is).
	Node string

	// Strategy names the session strategy, reported by GET /whoami.
	// Required: printable text of at most MaxTextLen bytes.
	Strategy string

	// Manager gives the requests their sessions. Required. It should be
	// configured with ErrorHandler (or NewErrorHandler) so that store
	// failures are answered in JSON.
	Manager *session.Manager

	// Logger receives errors the app answers itself (the per-user index
	// failing in POST /logout-all). Default: discard.
	Logger *slog.Logger
}

// app holds the handlers' configuration.
type app struct {
	node     string
	strategy string
	m        *session.Manager
	log      *slog.Logger
}

// route is one entry of the routing table.
type route struct {
	method, path string
	handler      func(*app, http.ResponseWriter, *http.Request)
}

// routes is the app's API; see the package documentation.
var routes = []route{
	{http.MethodPost, "/login", (*app).login},
	{http.MethodGet, "/cart", (*app).cart},
	{http.MethodPost, "/cart", (*app).addToCart},
	{http.MethodGet, "/whoami", (*app).whoami},
	{http.MethodPost, "/logout", (*app).logout},
	{http.MethodPost, "/logout-all", (*app).logoutAll},
	{http.MethodGet, "/sessions", (*app).sessions},
	{http.MethodDelete, "/sessions/{handle}", (*app).revokeSession},
	{http.MethodPost, "/logout-others", (*app).logoutOthers},
	{http.MethodGet, "/healthz", (*app).healthz},
}

// New returns the reference app: the routes of the package documentation,
// wrapped with cfg.Manager.Handler, with protection against cross-origin
// (CSRF) requests, and with the X-Node header on every response. It
// returns an error, never panics, on an invalid Config. The handler is safe
// for concurrent use.
func New(cfg Config) (http.Handler, error) {
	if cfg.Node == "" {
		return nil, errors.New("refapp: Config.Node is required")
	}
	if err := sid.CheckRoute(cfg.Node); err != nil {
		return nil, fmt.Errorf("refapp: Config.Node %q: %w", cfg.Node, err)
	}
	if cfg.Strategy == "" {
		return nil, errors.New("refapp: Config.Strategy is required")
	}
	if len(cfg.Strategy) > MaxTextLen || !utf8.ValidString(cfg.Strategy) ||
		strings.ContainsFunc(cfg.Strategy, unicode.IsControl) {
		return nil, fmt.Errorf("refapp: Config.Strategy %q is not printable text of at most %d bytes", cfg.Strategy, MaxTextLen)
	}
	if cfg.Manager == nil {
		return nil, errors.New("refapp: Config.Manager is required")
	}
	a := &app{node: cfg.Node, strategy: cfg.Strategy, m: cfg.Manager, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}

	mux := http.NewServeMux()
	allow := map[string][]string{} // path -> methods, in table order
	for _, rt := range routes {
		h := rt.handler
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) { h(a, w, r) })
		if rt.method == http.MethodGet {
			allow[rt.path] = append(allow[rt.path], http.MethodGet, http.MethodHead)
		} else {
			allow[rt.path] = append(allow[rt.path], rt.method)
		}
	}
	// A pattern without a method is less specific than one with a method,
	// so these catch the other methods of each path, and "/" every other
	// path: the mux's own 404 and 405 answers would be text.
	for path, methods := range allow {
		mux.Handle(path, methodNotAllowed(strings.Join(methods, ", ")))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request rejected")
	}))
	inner := cop.Handler(cfg.Manager.Handler(mux))
	node := cfg.Node
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Node", node)
		h.Set("X-Content-Type-Options", "nosniff")
		inner.ServeHTTP(w, r)
	}), nil
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method // an HTTP token: ASCII, safe to cut anywhere
		if len(method) > 20 {
			method = method[:20] + "..."
		}
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method "+method+" not allowed; use "+allow)
	})
}

// Answers.
type (
	loginAnswer struct {
		User string `json:"user"`
		Node string `json:"node"`
	}
	cartAnswer struct {
		User  string   `json:"user"`
		Items []string `json:"items"`
		Node  string   `json:"node"`
	}
	whoamiAnswer struct {
		User     string `json:"user"`
		Node     string `json:"node"`
		Strategy string `json:"strategy"`
		Created  string `json:"created"`
	}
	// sessionsAnswer lists the user's sessions ("your devices").
	sessionsAnswer struct {
		Sessions []sessionInfo `json:"sessions"`
		Node     string        `json:"node"`
	}
	// sessionInfo is one session: a handle, never its ID or store key.
	sessionInfo struct {
		Handle   string `json:"handle"`
		Current  bool   `json:"current"`
		Created  string `json:"created"`
		LastSeen string `json:"last_seen"`
		Client   string `json:"client"`
		IP       string `json:"ip,omitempty"`
	}
	// revokedAnswer's Revoked is the number of sessions ended, or "all"
	// when that number is unknown (the token strategy: see logoutAll).
	revokedAnswer struct {
		Revoked any `json:"revoked"`
	}
)

// session returns the request's session, or nil if it failed to load: then
// the handler must return without answering, and the Manager answers
// through its ErrorHandler.
func (a *app) session(r *http.Request) *session.Session {
	s := session.From(r)
	if s.Err() != nil {
		return nil
	}
	return s
}

// loggedIn returns the request's session and its user, or answers 401 (or
// leaves the answer to the Manager) and returns false.
func (a *app) loggedIn(w http.ResponseWriter, r *http.Request) (*session.Session, string, bool) {
	s := a.session(r)
	if s == nil {
		return nil, "", false
	}
	user := s.UserID()
	if user == "" {
		writeError(w, http.StatusUnauthorized, "not logged in")
		return nil, "", false
	}
	return s, user, true
}

func answerBadRequest(w http.ResponseWriter, err error) {
	if re, ok := errors.AsType[*requestError](err); ok {
		writeError(w, re.status, re.msg)
		return
	}
	writeError(w, http.StatusBadRequest, "bad request")
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	vals, err := decodeJSON(w, r, "user")
	if err != nil {
		answerBadRequest(w, err)
		return
	}
	user := vals[0]
	s := a.session(r)
	if s == nil {
		return
	}
	if prev := s.UserID(); prev != "" && prev != user {
		s.Clear() // another user's cart must not carry over
	}
	s.Login(user)
	writeJSON(w, http.StatusOK, loginAnswer{User: user, Node: a.node})
}

func (a *app) cart(w http.ResponseWriter, r *http.Request) {
	s, user, ok := a.loggedIn(w, r)
	if !ok {
		return
	}
	a.writeCart(w, s, user)
}

func (a *app) writeCart(w http.ResponseWriter, s *session.Session, user string) {
	items, _ := session.Value[[]string](s, cartKey)
	if items == nil {
		items = []string{}
	}
	writeJSON(w, http.StatusOK, cartAnswer{User: user, Items: items, Node: a.node})
}

func (a *app) addToCart(w http.ResponseWriter, r *http.Request) {
	s, _, ok := a.loggedIn(w, r)
	if !ok {
		return
	}
	vals, err := decodeJSON(w, r, "item")
	if err != nil {
		answerBadRequest(w, err)
		return
	}
	item := vals[0]
	if err := session.Update(s, cartKey, func(items []string) []string {
		return append(items[:len(items):len(items)], item)
	}); err != nil {
		// The stored cart does not decode as a list of strings.
		a.log.Error("refapp: cart unreadable", "err", err)
		writeError(w, http.StatusInternalServerError, msgInternal)
		return
	}
	// Save now, so that the answer shows the cart as stored, merged with
	// concurrent adds. If this fails, the middleware tries once more when
	// the answer starts and, failing again, replaces it with ErrorHandler's.
	_ = s.Save()
	user := s.UserID()
	if user == "" { // the session was destroyed concurrently (logout)
		writeError(w, http.StatusUnauthorized, "not logged in")
		return
	}
	a.writeCart(w, s, user)
}

func (a *app) whoami(w http.ResponseWriter, r *http.Request) {
	s, user, ok := a.loggedIn(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, whoamiAnswer{
		User:     user,
		Node:     a.node,
		Strategy: a.strategy,
		Created:  s.Created().UTC().Format(time.RFC3339),
	})
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	s := a.session(r)
	if s == nil {
		return
	}
	if s.Destroy() != nil {
		return // the Manager answers with its ErrorHandler
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// failed answers a per-user operation's error and reports whether there
// was one: 501 with "this session store cannot " + cannot when the store
// lacks the capability, the ErrorHandler's answer (logged as what) for
// any other failure.
func (a *app) failed(w http.ResponseWriter, r *http.Request, err error, cannot, what string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, session.ErrUnsupported):
		writeError(w, http.StatusNotImplemented, "this session store cannot "+cannot)
	default:
		a.log.Error("refapp: "+what+" failed", "err", err)
		ErrorHandler(w, r, err)
	}
	return true
}

// writeRevoked answers the number of sessions ended, or "all" when it is
// unknown (n < 0: tokens, where every token of the user whose session
// began before now is revoked, but no server knows how many there are).
func writeRevoked(w http.ResponseWriter, n int) {
	if n < 0 {
		writeJSON(w, http.StatusOK, revokedAnswer{Revoked: "all"})
		return
	}
	writeJSON(w, http.StatusOK, revokedAnswer{Revoked: n})
}

func (a *app) logoutAll(w http.ResponseWriter, r *http.Request) {
	s, user, ok := a.loggedIn(w, r)
	if !ok {
		return
	}
	n, err := a.m.DestroyUser(r.Context(), user)
	if a.failed(w, r, err, "end all sessions of a user", "ending a user's sessions") {
		return
	}
	// This session was one of them: also clear the client's token.
	if s.Destroy() != nil {
		return // the Manager answers with its ErrorHandler
	}
	writeRevoked(w, n)
}

func (a *app) sessions(w http.ResponseWriter, r *http.Request) {
	_, user, ok := a.loggedIn(w, r)
	if !ok {
		return
	}
	infos, err := a.m.UserSessions(r.Context(), user)
	if a.failed(w, r, err, "list a user's sessions", "listing a user's sessions") {
		return
	}
	out := sessionsAnswer{Sessions: make([]sessionInfo, len(infos)), Node: a.node}
	for i, in := range infos {
		out.Sessions[i] = sessionInfo{
			Handle: in.Handle, Current: in.Current, Client: in.Client, IP: in.IP,
			Created:  in.Created.UTC().Format(time.RFC3339),
			LastSeen: in.LastSeen.UTC().Format(time.RFC3339),
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *app) revokeSession(w http.ResponseWriter, r *http.Request) {
	s, user, ok := a.loggedIn(w, r)
	if !ok {
		return
	}
	handle := r.PathValue("handle")
	if handle != "" && handle == s.Handle() {
		// This device: end it as a logout does, clearing its token too.
		if s.Destroy() != nil {
			return // the Manager answers with its ErrorHandler
		}
		writeJSON(w, http.StatusOK, revokedAnswer{Revoked: 1})
		return
	}
	err := a.m.DestroyHandle(r.Context(), user, handle)
	switch {
	case errors.Is(err, session.ErrUnknownHandle):
		writeError(w, http.StatusNotFound, "no such session")
	case !a.failed(w, r, err, "end another session of a user; use POST /logout-others", "ending a session by handle"):
		writeRevoked(w, 1)
	}
}

func (a *app) logoutOthers(w http.ResponseWriter, r *http.Request) {
	s, _, ok := a.loggedIn(w, r)
	if !ok {
		return
	}
	n, err := s.DestroyOthers()
	if a.failed(w, r, err, "end the other sessions of a user", "ending a user's other sessions") {
		return
	}
	writeRevoked(w, n)
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n")) //nolint:errcheck // the client is gone; nothing to do
}
