package balancer

import "time"

// Observer receives the balancer's events: what happened to each proxied
// request, how it was routed, and what happened to the nodes. Adapters turn
// them into metrics or logs; package sessionmetrics (module
// github.com/sessionkit/sessionkit/sessionmetrics) has a Prometheus one,
// sessionmetrics.Balancer.
//
// The methods take only strings, integers and durations, so that an
// adapter implements Observer without importing this package (and its
// fasthttp dependency). Their string arguments are node names and the
// constants below, never a session ID.
//
// The methods run synchronously in the goroutine of the request or change
// that caused the event, so they must be quick, must not block, and must be
// safe for concurrent use. Without an Observer (Config.Observer nil, the
// default) events cost nothing: the balancer does not even read the clock
// for them.
//
// The per-node gauges (health, state, requests in flight, sessions) are not
// events: read them from Nodes when they are needed, as at a scrape.
type Observer interface {
	// NodeAdded reports a node that joined: one of Config.Backends, from
	// New, or one added by AddNode. Events name only nodes added so.
	NodeAdded(node string)

	// NodeRemoved reports a node that RemoveNode removed. A request in
	// flight on it may still end afterwards, with RequestDone (and Ejected
	// or ConnError) for it.
	NodeRemoved(node string)

	// RequestDone reports a proxied request that ended on node (the node
	// of its retry, if it was retried), d after it arrived, response body
	// included (a WebSocket or an event stream: when it closed). status is
	// the HTTP status the node answered with, or 413 for a request body
	// over Config.MaxBodyBytes (net/http engine), or 0 when no node
	// answered: the client got 502 or 503 from the balancer, or went away
	// first. A request that no node could take is reported by NoNode
	// instead; one that no connection could be made for (or, on the fast
	// engine, whose node had every connection busy), by NoNode and then
	// RequestDone with status 0.
	RequestDone(node string, status int, d time.Duration)

	// Affinity reports how a request was routed: AffinityHit (sent to its
	// session's node), AffinityMiss (it had no usable affinity: a new
	// user), or AffinityRehome with its cause (CauseNodeDown, ...): its
	// session's node could not take it and the session was re-homed. A
	// request is reported once as it is routed, and once more
	// (AffinityRehome, CauseNodeDown) when a connection error moves it,
	// with its session, to another node.
	Affinity(result, cause string)

	// SessionLost reports an in-memory session lost by re-homing it
	// (never with Config.SharedSessions), once per session approximately,
	// with the cause of its AffinityRehome.
	SessionLost(cause string)

	// Retried reports a request sent again, to another node, after a
	// connection error.
	Retried()

	// Ejected reports a node taken out of the rotation for
	// Config.EjectFor after a connection error.
	Ejected(node string)

	// ConnError reports a connection to node closed or reset without an
	// answer while the node still accepted new connections: the node was
	// not ejected.
	ConnError(node string)

	// NoNode reports a request answered 503 because no node could take it,
	// or no connection to a node could be made for it.
	NoNode()

	// RouteTagMismatch reports an answer of node that set the session
	// cookie to an ID whose route tag, tag, is not the node's name: the
	// node's route tag (sessionkit serve --node, session.Config.Route) and
	// its backend name differ, so requests with the tag cannot be routed
	// to it by name. The balancer logs it once per node and tag, and
	// routes a tag that names no node to the node seen to set it; tag is a
	// route tag (1 to 64 letters, digits, '-' and '_'), never a session ID.
	RouteTagMismatch(node, tag string)
}

// Results of Observer.Affinity.
const (
	AffinityHit    = "hit"
	AffinityMiss   = "miss"
	AffinityRehome = "rehome"
)

// Causes of a re-home, in Observer.Affinity and Observer.SessionLost.
const (
	CauseNodeDown      = "node_down"      // the node is down or ejected, or its connection failed
	CauseDrainDeadline = "drain_deadline" // the node was drained past its deadline
	CauseNodeRemoved   = "node_removed"   // the node was removed
	CauseUnknownNode   = "unknown_node"   // the route tag or affinity cookie names no node
)
