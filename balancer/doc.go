// Package balancer is sessionkit's sticky-session load balancer: an
// http.Handler reverse proxy that sends each user back to the node holding
// their session.
//
// # Affinity
//
// A request is routed, in this order, by:
//
//  1. the route tag of the app's session cookie (Config.SessionCookie,
//     default "__Host-session", then "session"): sessionkit's session IDs
//     are "<random>.<route>" (package session/sid), and the route names the
//     node that minted the session, so the balancer needs no table of its
//     own: a Backend's Name must be its node's route tag;
//  2. the balancer's own affinity cookie (Config.Affinity, off by default),
//     for apps that do not use sessionkit: an HMAC-signed value holding a
//     random key and an opaque node id, never a node's name or address;
//  3. otherwise the request has no affinity (a new user): the node is chosen
//     by rendezvous hashing of a random key, which spreads new sessions
//     evenly.
//
// When the node a session belongs to is down, ejected, removed or drained
// past its deadline, the session is re-homed by rendezvous (highest random
// weight) hashing of its random part over the nodes that take new sessions.
// Every balancer instance computes the same answer with no shared state, and
// adding or removing a node moves only the sessions that hash to it. With
// Config.LoadFactor, a node already carrying more than its share of requests
// in flight is skipped for new sessions and re-homes (consistent hashing with
// bounded loads); sticky requests always go to their node.
//
// A node whose answers set the session cookie to an ID tagged otherwise
// than its backend's name (backends x1, x2 in front of nodes started as
// node1, node2) is logged once per node and tag, with the fix, and
// reported to Observer.RouteTagMismatch; a tag that names no backend is
// then routed to the node seen to mint it.
//
// Config.SharedSessions states the failure policy: with a shared store or
// tokens a re-homed user keeps their session and nothing is counted; with
// in-memory sessions a re-homed user has lost their session, and the
// balancer reports it (once per session, approximately) to
// Observer.SessionLost, with its cause.
//
// # Health
//
// Active checks GET Config.Health.Path (default /healthz) on every node
// every Interval (default 2s); Fall consecutive failures (default 3) mark
// a node down and Rise successes (default 2) bring it back. A connection
// error while proxying ejects the node at once for Config.EjectFor (default
// 10s) or until its next successful check, if the node is down: the
// connection could not be made or timed out, or a new connection to the
// node fails too. A node that closed or reset one connection but accepts
// new ones (a keep-alive connection it timed out just as the balancer
// reused it) stays in the rotation with its users. Neither front end sends
// a request on a keep-alive connection the node has already closed: both
// find it out before they reuse one. A request that failed is retried once
// on another node when that is safe: always when no byte of it was sent
// (the connection could not be made), and for bodyless GET, HEAD and
// OPTIONS requests after any transport error.
// A request that no node received, because no node could take it or
// because no connection could be made for it (on its node, nor on the
// retry), is answered 503 with Retry-After: 1; one that a node received
// and failed to answer is answered 502.
//
// # Draining and runtime changes
//
// Drain stops new sessions on a node and keeps its existing sessions there
// until a deadline; AddNode and RemoveNode change the nodes at runtime.
// AdminHandler serves these as a small JSON API, meant for a separate,
// private listener.
//
// # Proxying: two front ends
//
// A Balancer is an http.Handler: ServeHTTP proxies with
// net/http/httputil.ReverseProxy, a tuned transport (NewTransport) and a
// buffer pool; every body streams, and WebSocket and other upgrades and
// server-sent events pass through. Header size limits and server timeouts
// belong to the http.Server that runs it.
//
// NewFastServer returns a github.com/valyala/fasthttp server over the same
// Balancer (the same routing, health, retries, draining and metrics) that
// spends about half the CPU per request; it buffers bodies and tunnels
// upgrades and event streams (see FastConfig). Serve it on
// FastListener(ln), whose connections make their system calls without
// the Go scheduler (Linux). It is the default of the
// balance command in cmd/sessionkit/internal/cli. WaitTunnels, after either server's
// shutdown, waits for the WebSockets and event streams still open.
//
// In both, X-Forwarded-For, -Host and -Proto are set from the client
// connection; headers of the same name sent by the client are dropped
// unless Config.TrustForwarded is set. Request bodies are limited to
// Config.MaxBodyBytes (default 32 MiB).
//
// A Balancer is safe for concurrent use, except NewFastServer, which must
// be called before the server it returns serves. Its configuration is fixed at New;
// only the node set and node states change afterwards, through its methods.
// Close stops the health checks.
//
// Session IDs are never logged; log lines name nodes only.
//
// # Metrics
//
// The balancer reports what happens to an Observer (Config.Observer):
// each request done, with its node, status and duration; affinity hits,
// misses and re-homes with their cause; lost sessions, retries, ejections,
// connection errors, requests no node took, route tag mismatches; nodes
// added and removed.
// Without one, the default, this costs nothing. Nodes gives the per-node
// state (health, state, requests in flight, sessions) for gauges. The
// Observer's methods take only strings, integers and durations, so an
// adapter implements it without importing this package:
// sessionmetrics.Balancer (module github.com/sessionkit/sessionkit/sessionmetrics)
// keeps the Prometheus metrics sessionkit_balancer_*, which the balance
// command serves on its admin listener. This package imports no metrics
// library.
package balancer
