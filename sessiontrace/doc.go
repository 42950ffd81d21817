// Package sessiontrace adds OpenTelemetry tracing to sessionkit: a span
// around every store call, a span around the session middleware's work in
// each request, and span events for what happens to sessions.
//
// # Use
//
//	tp := sdktrace.NewTracerProvider(...)      // or nil: otel.GetTracerProvider()
//	st, _ := memstore.New(memstore.Config{})
//	m, _ := session.New(session.Config{
//		Store:    sessiontrace.Store(st, tp),   // spans "sessionkit.store.<op>"
//		Observer: sessiontrace.Events{},        // span events "sessionkit.session.<kind>"
//	})
//	http.ListenAndServe(addr, sessiontrace.Middleware(tp)(m.Handler(app)))
//
// Middleware goes outside Manager.Handler: the session is saved when the
// response's header is sent or when the handler returns, both inside
// Manager.Handler, so that every store span of the request (the Load on
// first use as well as the final Save, Touch or Delete) becomes a child of
// the "sessionkit.session" span. Put HTTP server instrumentation such as
// otelhttp outside Middleware in turn; the session span is then a child of
// the server span. A store wrapped with Store but called outside a request
// (Manager.DestroyUser from a job, say) makes spans that are children of
// whatever span the caller's context carries.
//
// With a circuit breaker (package store/breaker), wrap the breaker, not the
// store inside it, so that calls the open breaker refuses still show up, as
// spans whose result is "unavailable".
//
// # What spans carry
//
// Store spans (SpanKind Client) carry the operation (AttrStoreOp) and its
// result (AttrStoreResult). Only an outage (store.IsOutage) sets the span's
// status to Error and records the error as an exception event: not found
// and conflict are answers of the store contract, not failures, and leave
// the status unset. The error's message is recorded as the store returned
// it; the stores of this module never put keys in their errors.
//
// The session span (SpanKind Internal) carries the request's method
// (http.request.method, "_OTHER" for methods outside RFC 9110 and PATCH),
// its path without query string (url.path), and, when the middleware runs
// inside a ServeMux route, the route's pattern (http.route).
//
// Nothing else about requests or sessions is recorded: no store keys, no
// session IDs or tokens, no user IDs, no session data, no headers.
//
// # Costs
//
// Everything here is safe for concurrent use and keeps no state beyond the
// Tracer it was made with. With a no-op TracerProvider a store call costs
// one closure call and a string concatenation more.
package sessiontrace
