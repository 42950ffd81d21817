// Package sessionmetrics exports the session Manager's events, its store
// calls, circuit breakers and in-memory stores as Prometheus metrics, and
// those of sessionkit's load balancer (Balancer).
//
//	reg := prometheus.NewRegistry()
//	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
//	...
//	b, _ := breaker.New(breaker.Config{OnStateChange: sm.BreakerHook("redis")})
//	m, _ := session.New(session.Config{Store: breaker.Wrap(rs, b), Observer: sm})
//	http.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// # Metrics
//
// Every name starts with Options.Namespace and an underscore, "sessionkit_"
// by default; the rest of sessionkit uses the same prefix. The names, their
// labels and the labels' values are part of the package's API:
//
//	sessionkit_session_events_total{event}           counter
//	sessionkit_sessions_revoked_total                counter
//	sessionkit_store_calls_total{op,result}          counter
//	sessionkit_store_call_duration_seconds{op}       histogram
//	sessionkit_breaker_state{store}                  gauge: 0 closed, 1 half-open, 2 open
//	sessionkit_breaker_transitions_total{store,to}   counter
//	sessionkit_memstore_entries{store}               gauge
//	sessionkit_memstore_bytes{store}                 gauge
//	sessionkit_memstore_evictions_total{store}       counter
//	sessionkit_memstore_expirations_total{store}     counter
//	sessionkit_nearcache_hits_total{store}           counter
//	sessionkit_nearcache_misses_total{store}         counter
//	sessionkit_nearcache_invalidations_total{store}  counter
//	sessionkit_nearcache_flushes_total{store}        counter
//	sessionkit_nearcache_evictions_total{store}      counter
//	sessionkit_nearcache_rejected_total{store}       counter
//	sessionkit_nearcache_bypassed_total{store}       counter
//	sessionkit_nearcache_entries{store}              gauge
//	sessionkit_nearcache_bytes{store}                gauge
//	sessionkit_nearcache_invalidation_delay_seconds{store,quantile} gauge: 0.5, 0.99, 1 (max)
//
// event is one of session.EventKind's names: created, renewed, destroyed,
// expired, user_revoked, conflict_retried, conflict_gave_up, degraded,
// limit_evicted, limit_refused, adopted (see
// session.EventKind for which are exact and which best-effort). A
// user_revoked event (Manager.DestroyUser) counts once in
// session_events_total and adds the number of sessions it ended to
// sessions_revoked_total.
//
// op is the store operation (store.OpNameLoad and the other OpName
// constants): load, save, delete, touch, list_user, delete_user. result
// classifies what the store answered, checked in this order:
//
//	ok           no error
//	unavailable  errors.Is(err, store.ErrUnavailable): a circuit breaker is
//	             open and the store was not asked
//	outage       the store failed (session.StoreCall.Outage: a timeout, a
//	             lost connection, an error of the server)
//	not_found    store.ErrNotFound
//	conflict     store.ErrConflict: a compare-and-set lost
//	other        any other answer of the contract (an invalid key, a closed
//	             store, the caller's own cancellation)
//
// The duration histogram observes every call, whatever its result; its
// default buckets (DefaultBuckets) run from 50µs to 5s.
//
// store, in the breaker and memstore metrics, is the name given to
// BreakerHook or WatchMemstore, usually the store's kind ("memory",
// "redis", "postgres").
//
// Every series of the event and store-call metrics exists, at zero, from
// New on, so that rate() and increase() see their first increment.
//
// # The balancer's metrics
//
// Balancer is a balancer.Observer (package balancer, module
// github.com/sessionkit/sessionkit/balancer) that keeps the load
// balancer's metrics. Their names are fixed, whatever Options.Namespace:
//
//	sessionkit_balancer_requests_total{node,class}        counter: proxied requests by status class (1xx..5xx, error: no answer)
//	sessionkit_balancer_request_duration_seconds{node}    histogram: time to proxy a request, response body included
//	sessionkit_balancer_affinity_total{result}            counter: hit, miss (no usable affinity), rehome
//	sessionkit_balancer_rehomes_total{cause}              counter: node_down, drain_deadline, node_removed, unknown_node
//	sessionkit_balancer_sessions_lost_total{cause}        counter: in-memory sessions lost by re-homing, about once per session
//	sessionkit_balancer_retries_total                     counter: requests retried on another node after a connection error
//	sessionkit_balancer_ejections_total{node}             counter: passive ejections after connection errors
//	sessionkit_balancer_conn_errors_total{node}           counter: connection errors that did not eject the node
//	sessionkit_balancer_no_node_total                     counter: requests answered 503: no node could take them, or be connected to
//	sessionkit_balancer_route_tag_mismatch_total{node}    counter: answers that set a session ID tagged otherwise than the node's name
//	sessionkit_balancer_node_up{node}                     gauge: 1 if the node passes its health checks
//	sessionkit_balancer_node_state{node,state}            gauge: 1 for the node's current state
//	sessionkit_balancer_node_inflight{node}               gauge: requests in flight on the node
//	sessionkit_balancer_node_sessions{node}               gauge: distinct affinity keys seen on the node recently
//
// The gauges are read at each scrape from the function given to
// WatchNodes. This package does not import the balancer (its module would
// then require fasthttp): Balancer's methods take the strings, integers
// and durations the balancer sends, and a program that uses both checks
// the match with
//
//	var _ balancer.Observer = (*sessionmetrics.Balancer)(nil)
//
// # Privacy and cardinality
//
// No label ever holds a session ID, a session's redacted name
// (session.Event.Session), a store key or a user ID: the label values are
// the fixed sets above plus the store names the caller chooses and the
// balancer's node names. The number of series is therefore fixed,
// whatever the traffic.
//
// # Reading the store calls
//
// Loads, saves, touches, deletes and conflicts are all store_calls_total,
// by op and result. In PromQL:
//
//	loads per second           sum(rate(sessionkit_store_calls_total{op="load"}[5m]))
//	unknown tokens presented   rate(sessionkit_store_calls_total{op="load",result="not_found"}[5m])
//	saves per second           sum(rate(sessionkit_store_calls_total{op="save"}[5m]))
//	touches per second         sum(rate(sessionkit_store_calls_total{op="touch"}[5m]))
//	logouts (deletes)          rate(sessionkit_store_calls_total{op="delete",result="ok"}[5m])
//	lost compare-and-sets      rate(sessionkit_store_calls_total{op="save",result="conflict"}[5m])
//	store failing              sum(rate(sessionkit_store_calls_total{result=~"outage|unavailable"}[5m]))
//	p99 latency of loads       histogram_quantile(0.99, rate(sessionkit_store_call_duration_seconds_bucket{op="load"}[5m]))
//
// A conflict on save is not an error yet: the Manager merges and retries
// (session_events_total{event="conflict_retried"}); only
// conflict_gave_up fails a request. docs/operations.md says what to alert
// on.
//
// # Concurrency and lifetime
//
// A *Metrics is safe for concurrent use and immutable after New. Its
// session.Observer methods take no lock and do not allocate for the
// operations and event kinds above. It holds no goroutines and needs no
// Close; the collectors stay registered with the Registerer until the
// caller unregisters them or drops the registry. Register one Metrics per
// registry: a second New on the same Registerer returns an error (the
// names are taken), as does WatchMemstore twice with one name.
//
// A *Balancer is safe for concurrent use too. The methods a request calls
// (RequestDone, Affinity, SessionLost, Retried, NoNode) take no lock and do
// not allocate once a series exists; NodeAdded and NodeRemoved take one.
// One NewBalancer, and one WatchNodes, per registry.
package sessionmetrics
