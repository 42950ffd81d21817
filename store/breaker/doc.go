// Package breaker puts a circuit breaker between the session Manager and a
// store, so that an outage of Redis or PostgreSQL costs each request
// microseconds instead of a timeout, and the site recovers on its own when
// the store returns.
//
//	b, _ := breaker.New(breaker.Config{})            // 5 failures in a row open it for 2s
//	m, _ := session.New(session.Config{Store: breaker.Wrap(redis, b)})
//
// Closed, every call goes through (bounded by the store's own timeout, or
// by Config.Timeout). After
// Config.Failures consecutive failures (errors other than the contract's
// answers: not found, conflict, invalid key; the caller's own cancellation
// does not count) the circuit opens: calls fail at once with an *OpenError,
// which wraps store.ErrUnavailable and says when to retry. After
// Config.OpenFor one probe call goes through (half-open); its success
// closes the circuit, its failure opens it again.
//
// The session Manager answers those requests through its ErrorHandler, by
// default 503 with Retry-After, or, with session.Config.FailOpen, serves
// them with an empty, unsaved, degraded session.
//
// A Breaker is safe for concurrent use, holds no goroutines and needs no
// Close.
package breaker
