// Package lab measures the session strategies side by side, under the same
// load and the same faults, on the user's own machine: what `sessionkit
// lab` runs.
//
// A row is a strategy and the extra serve flags its nodes get ("redis",
// "redis+near-cache" = serve --strategy redis --near-cache; ParseRow).
// For each row and each front, Run starts Config.Nodes `sessionkit serve`
// processes of the binary Config.Binary on loopback ports, with the flags
// the strategy's plan gives (package strategy: Strategy.Plan, the same
// registry serve opens its node with: a shared store reached through the
// lab's fault proxy, a token key ring, an embedded NATS or Olric cluster's
// addresses and data directories), and a front in front of them:
// `sessionkit balance` (a process too), HAProxy or nginx, configured as
// docs/balancer.md shows, routing by the session cookie's route tag.
// Virtual users, each with its own cookie jar, log in through the front,
// add items to their cart (sometimes several at once, as a user with two
// tabs does), read the cart back and log out. On a schedule, the last
// node's process is killed with SIGKILL at about 40% of the run and a new
// process is started in its place at about 70%: under the same name and
// on the same data directory (FaultNode), or, for the strategies whose
// nodes are members of an embedded cluster, as a new member under a new
// name (FaultReplace). With the store fault, the connections to the shared
// store are cut from about 45% to 60%. The rows of olric and nats run
// Config.Settle longer with a node fault, so that a NATS leader election
// (4.5 to 8 s after a SIGKILL) ends inside the run.
//
// What is counted comes from what the virtual users observe, not from what
// the strategy says about itself:
//
//   - a session lost is a logged-in user answered 401 (no session), or,
//     for a strategy whose sessions live on one node (memory), a request
//     carrying the session's cookie answered by another node than the one
//     that made it (the front re-homed the user: a logout, or the login
//     after a logout that failed as the node died), counted once a
//     session; users lost are the users who lost at least one;
//   - an update lost is an item whose add was answered 200 and that a later
//     read of the same session's cart does not hold; on a row with a near
//     cache, whose copies may lag an acknowledged write by up to their
//     maximum age (1 s), the read is repeated for 1.5 s first, and an
//     item found meanwhile counts as a stale read instead;
//   - a stale read is a read of the cart made directly at another node
//     than the one that acknowledged an add (past the front, a quarter of
//     the single adds), right after it, that lacks an item acknowledged
//     before the read started, or a read through the front on a near-cache
//     row that a later read within 1.5 s found behind (see above);
//   - the logout lag is the time from a logout's acknowledgement to the
//     moment every node answers the old cookie 401 (each polled directly,
//     at once, every 2 ms, then every 20 ms after 100 ms; at most 8
//     logouts measured at a time; one still honoured after 5 s is counted
//     apart, as late); it includes one request's latency;
//   - an error is a transport failure or an answer other than the route's
//     documented ones (a 5xx, say);
//   - the recovery after each fault is the time to the first request
//     started after it that succeeded, and the time until the successes
//     per second (over 1 s), having dipped under 90% of their rate before
//     the first fault, are back to it;
//   - session bytes on the wire are the Cookie header a request carries and
//     the Set-Cookie headers of its answer;
//   - store calls per request are the nodes' own count of their store
//     calls (sessionkit_store_calls_total, read from each node's /metrics
//     every 250 ms: a killed node takes its last quarter second of calls
//     with it) over the requests the users made.
//
// The direct reads and polls are not counted as requests. An outside
// count agrees with the users' (TestIndependentCount reads the sessionkit
// front's metrics at the end of a run, Config.BeforeStop).
//
// A row whose service does not answer (Redis, PostgreSQL, Memcached),
// whose front is not installed, or whose serve flags serve refuses (exit
// status 2, for a flag that does not apply to the strategy) is reported as
// skipped, with the reason. Each node's output goes to a log file in the
// row's scratch directory; a node that fails to start is reported with
// the end of its log. Every process the lab starts is killed when its row
// ends or Run's context is done (Ctrl-C), and on Linux by the kernel if
// the lab itself dies; every scratch directory is removed (but for a lab
// killed with SIGKILL, whose scratch directory stays in the temporary
// directory, named sessionkit-lab-*).
//
// The in-process mode remains for the migration runs (Config.Migrate)
// only: their nodes are reference apps in the lab's process behind
// sessionkit's balancer package, because a migration switches every
// node's strategy in the middle of the run without a restart, which
// processes cannot do; their faults are none.
//
// Run is not safe for concurrent use with itself: the topologies take
// loopback ports and CPU, one at a time.
package lab
