// Package session is sessionkit's session API: a Manager that loads and
// saves the sessions of HTTP requests in any store.Store, and net/http
// middleware that gives each request its Session.
//
// # Use
//
//	st, _ := memstore.New(memstore.Config{})
//	m, err := session.New(session.Config{Store: st, Route: "n1"})
//	...
//	http.ListenAndServe(addr, m.Handler(mux))
//
// and in a handler:
//
//	s := session.From(r)
//	s.Login("alice")                          // binds the user, renews the ID
//	session.Update(s, "cart", func(items []string) []string { return append(items, "x") })
//	cart, _ := session.Value[[]string](s, "cart")
//	s.Destroy()                                // logout, on every instance
//
// # Costs
//
// A request that never calls its Session costs no store call. One that
// reads costs one Load; one that changes something costs one Save more (a
// compare-and-set). A request that changed nothing writes nothing unless the
// session's expiry is more than Config.TouchInterval stale.
//
// # Concurrent requests
//
// Changes are recorded as key-level operations. If another request saved
// the session after this one loaded it, the save fails its compare-and-set;
// the Manager reloads the session, replays this request's operations on it,
// and saves again, up to Config.MaxRetries times. So two requests that set
// different keys both survive, and so do two that change one key through
// Update. A request still running when its session is destroyed (logout,
// Manager.DestroyUser) discards its changes instead of resurrecting the
// session.
//
// # Security defaults
//
// IDs are 256 random bits (package sid). The cookie is "__Host-session":
// HttpOnly, Secure, SameSite=Lax, Path=/, host-only, and named with the
// "__Host-" prefix, which browsers accept only with those attributes
// (Cookie.NoHostPrefix opts out; Cookie.Insecure drops Secure and the
// prefix). Login and Renew change the ID; the old one names no session
// afterwards (Login also restarts the absolute lifetime). Sessions
// end after Config.IdleTimeout without use and Config.Lifetime after
// creation (30 minutes and 12 hours by default), both enforced by the
// Manager as well as by the store's expiry. Malformed, tampered, unknown or
// oversized tokens read as "no session". IDs never reach the logs: sessions
// are named by a salted hash of their store key.
//
// # Stateless tokens
//
// With Config.Tokens instead of Config.Store (package token provides one),
// the Manager keeps the whole session in the client's token: no store
// call to read a session, a new token whenever it changes, revocation for
// Destroy, Renew, Login and DestroyUser, and a *TokenSizeError for a
// session too large for a cookie. Concurrent changes of one session are
// not merged with tokens: the client keeps the last token it received.
//
// # Observing
//
// Config.Observer receives session events and every store call (package
// sessionmetrics turns them into Prometheus metrics, package sessiontrace
// into OpenTelemetry spans); Config.Logger receives errors.
package session
