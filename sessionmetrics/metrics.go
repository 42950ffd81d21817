package sessionmetrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/nearcache"
)

// DefaultNamespace is the prefix of every metric name unless
// Options.Namespace says otherwise.
const DefaultNamespace = "sessionkit"

// DefaultBuckets returns the default buckets of the store call histogram,
// in seconds: from 50µs (an in-memory store, or a circuit breaker failing
// fast) to 5s (beyond the stores' default 2s timeout). It returns a new
// slice on every call.
func DefaultBuckets() []float64 {
	return []float64{
		0.00005, 0.0001, 0.00025, 0.0005,
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
		0.1, 0.25, 0.5, 1, 2.5, 5,
	}
}

// Options configures New. The zero value means every default.
type Options struct {
	// Namespace is the prefix of every metric name, joined with an
	// underscore; default DefaultNamespace ("sessionkit"). It must be a
	// valid Prometheus metric name.
	Namespace string

	// Buckets are the upper bounds, in seconds, of the buckets of
	// store_call_duration_seconds; default DefaultBuckets(). They must be
	// strictly increasing. New copies them.
	Buckets []float64
}

// Values of the result label of store_calls_total.
const (
	resultOK          = "ok"
	resultNotFound    = "not_found"
	resultConflict    = "conflict"
	resultOutage      = "outage"
	resultUnavailable = "unavailable"
	resultOther       = "other"
)

// results lists the result labels; its order is that of resultIndex.
var results = [...]string{resultOK, resultNotFound, resultConflict, resultOutage, resultUnavailable, resultOther}

// ops are the store operations whose series New creates up front.
var ops = [...]string{
	store.OpNameLoad, store.OpNameSave, store.OpNameDelete,
	store.OpNameTouch, store.OpNameListUser, store.OpNameDeleteUser,
}

// eventKinds are the session events whose series New creates up front.
var eventKinds = [...]session.EventKind{
	session.EventCreated, session.EventRenewed, session.EventDestroyed, session.EventExpired,
	session.EventUserRevoked, session.EventConflictRetried, session.EventConflictGaveUp, session.EventDegraded,
	session.EventLimitEvicted, session.EventLimitRefused, session.EventAdopted,
}

// Metrics records a session Manager's events and store calls, circuit
// breaker states and in-memory store statistics. Create it with New; pass
// it as session.Config.Observer. It is safe for concurrent use.
type Metrics struct {
	reg prometheus.Registerer
	ns  string

	events      *prometheus.CounterVec
	revoked     prometheus.Counter
	calls       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	breakerSt   *prometheus.GaugeVec
	transitions *prometheus.CounterVec

	// Children of the known label values, resolved once by New, so that the
	// Observer methods skip the vectors' label lookups.
	eventCounters [len(eventKinds) + 1]prometheus.Counter // by EventKind
	opMetrics     map[string]*opMetrics
}

type opMetrics struct {
	results  [len(results)]prometheus.Counter
	duration prometheus.Observer
}

var _ session.Observer = (*Metrics)(nil)

// New creates the metrics and registers them with reg. It returns an error,
// and registers nothing, if opts is invalid or reg already holds metrics of
// the same names (New called twice on one registry).
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("sessionmetrics: nil Registerer")
	}
	ns := opts.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if !validName(ns) {
		return nil, fmt.Errorf("sessionmetrics: Options.Namespace %q is not a valid metric name", ns)
	}
	buckets := slices.Clone(opts.Buckets)
	if len(buckets) == 0 {
		buckets = DefaultBuckets()
	}
	for i := 1; i < len(buckets); i++ {
		if !(buckets[i] > buckets[i-1]) {
			return nil, fmt.Errorf("sessionmetrics: Options.Buckets are not strictly increasing (%v after %v)",
				buckets[i], buckets[i-1])
		}
	}

	m := &Metrics{
		reg: reg,
		ns:  ns,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "session_events_total",
			Help: "Session events of the Manager, by kind (see session.EventKind).",
		}, []string{"event"}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "sessions_revoked_total",
			Help: "Sessions ended by Manager.DestroyUser (log out everywhere).",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "store_calls_total",
			Help: "Calls of the Manager to its session store, by operation and result " +
				"(ok, not_found, conflict, outage, unavailable, other).",
		}, []string{"op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "store_call_duration_seconds",
			Help:    "Duration of the Manager's calls to its session store, whatever their result.",
			Buckets: buckets,
		}, []string{"op"}),
		breakerSt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "breaker_state",
			Help: "State of the store's circuit breaker: 0 closed, 1 half-open, 2 open.",
		}, []string{"store"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "breaker_transitions_total",
			Help: "Changes of state of the store's circuit breaker, by the state entered.",
		}, []string{"store", "to"}),
		opMetrics: make(map[string]*opMetrics, len(ops)),
	}
	for _, k := range eventKinds {
		m.eventCounters[k] = m.events.WithLabelValues(k.String())
	}
	for _, op := range ops {
		om := &opMetrics{duration: m.duration.WithLabelValues(op)}
		for i, r := range results {
			om.results[i] = m.calls.WithLabelValues(op, r)
		}
		m.opMetrics[op] = om
	}

	if err := registerAll(reg, m.events, m.revoked, m.calls, m.duration, m.breakerSt, m.transitions); err != nil {
		return nil, fmt.Errorf("sessionmetrics: registering: %w", err)
	}
	return m, nil
}

// registerAll registers cs with reg, all or none: after an error it
// unregisters those it had registered.
func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// SessionEvent counts e in session_events_total, and for a user_revoked
// event adds e.Count to sessions_revoked_total. It implements
// session.Observer.
func (m *Metrics) SessionEvent(_ context.Context, e session.Event) {
	if int(e.Kind) < len(m.eventCounters) && m.eventCounters[e.Kind] != nil {
		m.eventCounters[e.Kind].Inc()
	} else {
		m.events.WithLabelValues(e.Kind.String()).Inc() // "unknown"
	}
	if e.Kind == session.EventUserRevoked && e.Count > 0 {
		m.revoked.Add(float64(e.Count))
	}
}

// StoreCall counts c in store_calls_total and observes its duration in
// store_call_duration_seconds. It implements session.Observer.
func (m *Metrics) StoreCall(ctx context.Context, c session.StoreCall) {
	r := resultIndex(ctx, c)
	sec := c.Duration.Seconds()
	if om := m.opMetrics[c.Op]; om != nil {
		om.results[r].Inc()
		om.duration.Observe(sec)
		return
	}
	op := labelValue(c.Op) // an operation this package does not know yet
	m.calls.WithLabelValues(op, results[r]).Inc()
	m.duration.WithLabelValues(op).Observe(sec)
}

// resultIndex classifies a store call by its store.Result (computed from
// its error when the caller left Result empty): its index in results. The
// results that say nothing about the store's health and are rare (invalid
// key, unsupported, closed, canceled) share "other".
func resultIndex(ctx context.Context, c session.StoreCall) int {
	result := c.Result
	if result == "" {
		result = store.Result(ctx, c.Err)
		if result == store.ResultOutage && !c.Outage {
			result = "" // the caller says it was no outage: other
		}
	}
	switch result {
	case store.ResultOK:
		return 0
	case store.ResultNotFound:
		return 1
	case store.ResultConflict:
		return 2
	case store.ResultOutage:
		return 3
	case store.ResultUnavailable:
		return 4
	}
	return 5
}

// breakerValue maps a breaker state to the value of breaker_state, which
// grows with the trouble: closed 0, half-open 1, open 2.
func breakerValue(s breaker.State) float64 {
	switch s {
	case breaker.Closed:
		return 0
	case breaker.HalfOpen:
		return 1
	}
	return 2
}

// BreakerHook returns a function to pass as breaker.Config.OnStateChange
// of the breaker in front of the store called name. It sets
// breaker_state{store=name} to 0 (closed, the state of a new breaker) at
// once, and on every change sets it to the new state and counts
// breaker_transitions_total{store=name,to}, where to is closed, half-open
// or open. The function is quick and safe for concurrent use.
//
// The breaker calls the hook after releasing its lock, so two changes made
// by different goroutines within microseconds could reach the gauge in the
// wrong order; between them lies at least breaker.Config.OpenFor (or a
// whole store call), so in practice the gauge shows the breaker's state.
func (m *Metrics) BreakerHook(name string) func(from, to breaker.State) {
	name = labelValue(name)
	gauge := m.breakerSt.WithLabelValues(name)
	gauge.Set(0)
	to := map[breaker.State]prometheus.Counter{}
	for _, s := range []breaker.State{breaker.Closed, breaker.HalfOpen, breaker.Open} {
		to[s] = m.transitions.WithLabelValues(name, s.String())
	}
	return func(_, s breaker.State) {
		gauge.Set(breakerValue(s))
		if c := to[s]; c != nil {
			c.Inc()
		} else {
			m.transitions.WithLabelValues(name, labelValue(s.String())).Inc()
		}
	}
}

// WatchMemstore registers a collector that reads s.Stats() at every scrape
// and exports it as memstore_entries, memstore_bytes,
// memstore_evictions_total and memstore_expirations_total, labelled
// store=name. Evictions are sessions dropped to make room: users who lose
// their session. It returns an error if a memstore of the same name is
// already watched on the Registerer. The collector keeps s reachable until
// it is unregistered; Stats is safe after s is closed.
func (m *Metrics) WatchMemstore(name string, s *memstore.Store) error {
	if s == nil {
		return errors.New("sessionmetrics: WatchMemstore with a nil store")
	}
	labels := prometheus.Labels{"store": name}
	desc := func(n, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(m.ns, "memstore", n), help, nil, labels)
	}
	c := &memstoreCollector{
		s:           s,
		entries:     desc("entries", "Records held by the in-memory store, including expired ones not yet removed."),
		bytes:       desc("bytes", "Sum of len(key)+len(data)+len(user ID) over the records of the in-memory store."),
		evictions:   desc("evictions_total", "Live sessions the in-memory store dropped to make room (lost sessions)."),
		expirations: desc("expirations_total", "Expired sessions the in-memory store removed."),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("sessionmetrics: watching memstore %q: %w", name, err)
	}
	return nil
}

type memstoreCollector struct {
	s                                      *memstore.Store
	entries, bytes, evictions, expirations *prometheus.Desc
}

func (c *memstoreCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.bytes
	ch <- c.evictions
	ch <- c.expirations
}

func (c *memstoreCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(c.expirations, prometheus.CounterValue, float64(st.Expirations))
}

// WatchNearCache registers a collector that reads r.NearCacheStats() at
// every scrape and exports it as nearcache_hits_total,
// nearcache_misses_total, nearcache_invalidations_total,
// nearcache_flushes_total, nearcache_evictions_total,
// nearcache_rejected_total, nearcache_bypassed_total, nearcache_entries,
// nearcache_bytes and
// nearcache_invalidation_delay_seconds{quantile} (0.5, 0.99 and 1 for
// the largest seen), labelled store=name. It returns an error if a near
// cache of the same name is already watched on the Registerer. A scrape
// while r reports no near cache exports nothing.
func (m *Metrics) WatchNearCache(name string, r nearcache.Reporter) error {
	if r == nil {
		return errors.New("sessionmetrics: WatchNearCache with a nil store")
	}
	labels := prometheus.Labels{"store": name}
	desc := func(n, help string, vars ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(m.ns, "nearcache", n), help, vars, labels)
	}
	c := &nearCacheCollector{r: r,
		hits:          desc("hits_total", "Session reads the near cache answered with no store round trip."),
		misses:        desc("misses_total", "Session reads the near cache could not answer (sent to the store)."),
		invalidations: desc("invalidations_total", "Keys dropped from the near cache because they changed, here or on another node."),
		flushes:       desc("flushes_total", "Times the near cache was emptied because its change feed broke."),
		evictions:     desc("evictions_total", "Entries dropped to stay within the near cache's bounds."),
		rejected:      desc("rejected_total", "Reads not cached because their key changed while they travelled."),
		bypassed:      desc("bypassed_total", "Session reads sent to the store, bypassing the near cache, because its change feed was not live."),
		entries:       desc("entries", "Records held by the near cache."),
		bytes:         desc("bytes", "Size of the records held by the near cache (key, user, data and overhead)."),
		delay: desc("invalidation_delay_seconds", "Measured delay from a change acknowledged by the store to its invalidation here: "+
			"quantiles over the last 256 probes, 1 for the largest seen.", "quantile"),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("sessionmetrics: watching near cache %q: %w", name, err)
	}
	return nil
}

type nearCacheCollector struct {
	r                                                                                          nearcache.Reporter
	hits, misses, invalidations, flushes, evictions, rejected, bypassed, entries, bytes, delay *prometheus.Desc
}

func (c *nearCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.invalidations, c.flushes, c.evictions, c.rejected, c.bypassed, c.entries, c.bytes, c.delay} {
		ch <- d
	}
}

func (c *nearCacheCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.r.NearCacheStats()
	if !ok {
		return
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.hits, st.Hits)
	counter(c.misses, st.Misses)
	counter(c.invalidations, st.Invalidations)
	counter(c.flushes, st.Flushes)
	counter(c.evictions, st.Evictions)
	counter(c.rejected, st.Rejected)
	counter(c.bypassed, st.Bypassed)
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	if st.Delay.Count > 0 {
		for q, d := range map[string]time.Duration{"0.5": st.Delay.P50, "0.99": st.Delay.P99, "1": st.Delay.Max} {
			ch <- prometheus.MustNewConstMetric(c.delay, prometheus.GaugeValue, d.Seconds(), q)
		}
	}
}

// validName reports whether s is a valid Prometheus metric name in the
// classic character set.
func validName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_' || r == ':' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// labelValue makes s a valid label value (UTF-8), so that the vectors'
// WithLabelValues cannot panic.
func labelValue(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
