// Package lab measures the session strategies side by side, under the same
// load and the same faults, on the user's own machine: what `sessionkit
// lab` runs.
//
// For each strategy, Run starts a topology in this process on loopback
// ports: sessionkit's balancer (package balancer) in front of Config.Nodes
// reference-app nodes (internal/refapp) whose session Managers share that
// strategy; the strategy's testbed (package strategy, the registry
// `sessionkit serve` opens its node with too) prepares what the nodes
// share and opens each node's sessions. Virtual users, each with its own
// cookie jar, log in, add items to their cart (sometimes several at once,
// as a user with two tabs does), read the cart back and log out. On a
// schedule, one node is killed abruptly (its listener and connections
// closed, its memory gone) at about 40% of the run and brought back at
// about 70%; with the store fault, the connections to the shared store are
// cut from about 45% to 60%.
//
// What is counted comes from what the virtual users observe, not from what
// the strategy says about itself:
//
//   - a session lost is a logged-in user answered 401 (no session);
//   - an update lost is an item whose add was answered 200 and that a later
//     read of the same session's cart does not hold;
//   - an error is a transport failure or an answer other than the route's
//     documented ones (a 5xx, say);
//   - session bytes on the wire are the Cookie header a request carries and
//     the Set-Cookie headers of its answer;
//   - store calls per request are the calls the nodes' Managers made to the
//     store, counted around the store, over the requests the users made.
//
// All of a topology runs in this one process, so a killed node's memory
// is dropped rather than lost with a process: its memstore is closed, and
// for the nats and olric strategies its embedded NATS server or Olric
// member is shut down (which hands its Raft leadership or its partitions
// over; the crash tests of store/natsstore and store/olricstore kill node
// processes with SIGKILL instead).
//
// A strategy whose service does not answer (Redis, PostgreSQL) is reported
// as skipped, with the reason. Run is not safe for concurrent use with
// itself: the topologies take loopback ports and CPU, one at a time.
package lab
