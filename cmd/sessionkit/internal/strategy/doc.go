// Package strategy is the registry of sessionkit's session strategies:
// for each one (memory, token, redis, postgres, memcached, olric, nats) one entry
// that says which of serve's flags configure it, how a node opens where it
// keeps its sessions (a store.Store, or a session.TokenCodec for the token
// strategy, plus any route of its own such as the JWKS), how it closes
// them, how it dies abruptly and how it comes back.
//
// Both commands that run nodes look strategies up here, so that a new
// strategy, or a changed option of one, is one edit: `sessionkit serve`
// declares the entries' flags (Flags), checks them (Strategy.Uses,
// Strategy.Check) and opens its one node with Strategy.Open; `sessionkit
// lab` runs several serve processes of each strategy on this machine
// through Strategy.Plan, which prepares what the nodes share (a store
// server behind the lab's fault proxy, a key ring, an embedded NATS or
// Olric cluster's addresses and directories) and gives each node's serve
// flags (Plan.Args, from Settings through Strategy.Args), for its first
// start, a restart, or a replacement under a new name. The lab's
// migration runs, which switch strategy inside running nodes, open their
// nodes in the lab's process through Strategy.Testbed instead.
//
// What the two callers have differs, and the inputs say so. Node is what
// either gives for one node: serve its flags' Settings, its logger and a
// breaker hook for its metrics; the lab a wrapper that counts store calls,
// shorter timeouts and a shorter breaker. TestbedConfig is what only the
// lab gives: a scratch directory, a source of free ports and its fault
// proxy. A Testbed's nodes share the lab's process: its token nodes share
// one in-memory revocation store (standing for the Redis of a real
// deployment), and a killed node's embedded NATS node or Olric member is
// shut down, which hands over what it held, where a process killed with
// SIGKILL would not; a Plan's serve processes share only what serve
// itself shares (the token strategy's revocations in Redis when it
// answers, else none).
//
// Concurrency: the registry is fixed when the program starts; All,
// Lookup, Names, Flags and Defaults are safe for concurrent use. Open may
// run concurrently for different nodes, except that the Olric members of
// one process must start one after another (olricstore's rule).
// Sessions.Close and Sessions.Kill are safe from any goroutine: the first
// call wins and later ones do nothing. A Testbed's Open calls must not
// overlap; a node's Kill may run while the other nodes serve.
package strategy
