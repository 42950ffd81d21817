// Package refapp is sessionkit's reference app: the small shopping-cart API
// that every `sessionkit serve` process and every node of the lab runs, so
// that each session strategy is measured on the same workload.
//
// # Routes
//
// JSON in and out (Content-Type: application/json); every response,
// including errors, 404s and 405s, carries the header "X-Node: <node>".
//
//	POST /login       {"user":"alice"}  binds the session to the user and renews its ID
//	                                    -> {"user":"alice","node":"n1"}
//	GET  /cart                          -> {"user":"alice","items":["a","b"],"node":"n2"}
//	POST /cart        {"item":"x"}      appends one item -> the cart, as above
//	GET  /whoami                        -> {"user":"alice","node":"n1","strategy":"memory","created":"2030-01-01T00:00:00Z"}
//	POST /logout                        destroys this session -> {}
//	POST /logout-all                    destroys every session of the user -> {"revoked":3}
//	                                    (the token strategy: {"revoked":"all"}, see below)
//	GET  /sessions                      the user's sessions, the most recently used first ("your devices")
//	                                    -> {"sessions":[{"handle":"3q2-7wAAAAAAAAAA","current":true,
//	                                        "created":RFC3339,"last_seen":RFC3339,"client":"Firefox on Linux"}],
//	                                        "node":"n1"} ("ip" too, when the Manager keeps it)
//	DELETE /sessions/{handle}           ends one of the user's sessions -> {"revoked":1}
//	POST /logout-others                 ends every session of the user but this one -> {"revoked":2}
//	                                    (the token strategy: {"revoked":"all"})
//	GET  /healthz                       liveness, touches no session -> "ok\n" (text/plain)
//
// Logging in as another user than the one the session is bound to empties
// the session first, so one user's cart never reaches another. Logging in
// again as the same user keeps the cart and still renews the ID.
//
// POST /cart adds its item with session.Update, never a Get followed by a
// Set, and saves before answering: concurrent adds to one session all
// survive, and the cart in the answer is the one that was stored, including
// items added concurrently by other requests.
//
// POST /logout-all answers with the number of sessions it ended. On the
// token strategy no server knows that number: the user's sessions live in
// tokens that only their clients hold. It sets a per-user cutoff instead
// (session.Manager.DestroyUser returns -1), which refuses every token of
// the user whose session began (logged in) before the request: on this
// node at once, on the others within the revocation refresh interval. It
// answers {"revoked":"all"}.
//
// A handle names a session without revealing its ID or store key
// (session.Info.Handle). DELETE /sessions/{handle} with the request's own
// handle is a logout (its token is cleared too). On the token strategy
// GET /sessions lists only the request's own session (no server knows the
// user's other tokens), DELETE of another handle answers 501, and POST
// /logout-others revokes every token of the user and logs this session in
// again with a new token.
//
// With session.Config.MaxSessionsPerUser (serve --max-user-sessions), a
// login beyond the limit ends the user's least recently used sessions, or
// is refused with 409 (session.RefuseNew).
//
// # Errors
//
// Every error is a JSON object {"error":"..."} with a status:
//
//	400  malformed JSON, a body that is not one JSON object, trailing data,
//	     an unknown, duplicate, missing, empty or non-string field, invalid
//	     UTF-8, a control character, a value longer than MaxTextLen bytes
//	401  every route but POST /login, POST /logout and GET /healthz without a
//	     logged-in session (POST /logout without one still answers {})
//	403  a cross-origin browser request that changes state (CSRF; see
//	     net/http.CrossOriginProtection)
//	404  an unknown path; DELETE /sessions/{handle} with a handle that names
//	     no live session of the user (nothing changes)
//	405  a known path with another method; the Allow header lists the right ones
//	413  a body larger than MaxBodyBytes; a session grown larger than the
//	     session store holds (store.ErrTooLarge: Memcached's item size,
//	     memstore's MaxBytes)
//	415  a body whose Content-Type is set and is not application/json
//	409  POST /login beyond the user's session limit, with the refuse policy
//	501  POST /logout-all, GET /sessions, DELETE /sessions/{handle} and POST
//	     /logout-others on a store without a per-user index
//	503  the session store failed (session.ErrStore), or the session changed
//	     concurrently more often than the Manager retries
//	     (session.ErrTooManyConflicts, with Retry-After: 1)
//
// Store failures are answered by ErrorHandler, which the session.Manager
// must be configured with (session.Config.ErrorHandler): a request whose
// session could not be loaded never reads as "not logged in". Error
// answers never contain the text of the underlying error, which could carry
// details of the store; NewErrorHandler logs it.
package refapp
