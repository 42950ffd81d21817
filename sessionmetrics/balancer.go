package sessionmetrics

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// balancerPrefix starts the name of every metric of Balancer. It is fixed,
// whatever Options.Namespace: dashboards know these names.
const balancerPrefix = "sessionkit_balancer_"

// The values of the labels that Balancer's Observer methods take, as the
// balancer package names them (its Affinity* and Cause* constants). This
// package does not import the balancer, so it has its own copies;
// internal/cli checks that they agree.
const (
	affinityHit    = "hit"
	affinityMiss   = "miss"
	affinityRehome = "rehome"
)

// statusClasses are the values of the class label of requests_total, by
// index: no answer, then 1xx to 5xx.
var statusClasses = [...]string{"error", "1xx", "2xx", "3xx", "4xx", "5xx"}

// Balancer records the events of sessionkit's load balancer (package
// balancer, module github.com/sessionkit/sessionkit/balancer) as the
// sessionkit_balancer_ metrics. Create it with NewBalancer and pass it as
// balancer.Config.Observer; add the per-node gauges with WatchNodes once
// the balancer exists. It implements balancer.Observer with the methods
// below, whose arguments are only strings, integers and durations: this
// package does not import the balancer, so a program that uses sessionmetrics
// for its sessions only does not get the balancer's dependencies. It is
// safe for concurrent use.
type Balancer struct {
	reg prometheus.Registerer

	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	affinity   *prometheus.CounterVec
	hit        prometheus.Counter
	miss       prometheus.Counter
	rehome     prometheus.Counter
	rehomes    *prometheus.CounterVec
	lost       *prometheus.CounterVec
	retries    prometheus.Counter
	ejections  *prometheus.CounterVec
	connErrors *prometheus.CounterVec
	noNode     prometheus.Counter
	tagged     *prometheus.CounterVec // route_tag_mismatch_total

	mu    sync.Mutex                             // serializes NodeAdded and NodeRemoved
	nodes atomic.Pointer[map[string]*nodeSeries] // the nodes added and not removed; replaced, never changed
}

// nodeSeries are a node's request series, resolved when it is added, so
// that RequestDone costs no label lookup.
type nodeSeries struct {
	classes  [len(statusClasses)]prometheus.Counter
	duration prometheus.Observer
}

// NewBalancer creates the balancer's metrics and registers them with reg.
// It returns an error, and registers nothing, if reg already holds metrics
// of the same names (NewBalancer called twice on one registry).
func NewBalancer(reg prometheus.Registerer) (*Balancer, error) {
	if reg == nil {
		return nil, errors.New("sessionmetrics: nil Registerer")
	}
	m := &Balancer{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: balancerPrefix + "requests_total", Help: "Proxied requests by node and status class (error: no answer from any node).",
		}, []string{"node", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: balancerPrefix + "request_duration_seconds", Help: "Time to proxy a request, response body included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"node"}),
		affinity: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: balancerPrefix + "affinity_total", Help: "Requests by affinity result: hit (sent to its node), miss (no usable affinity), rehome (its node could not take it).",
		}, []string{"result"}),
		rehomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: balancerPrefix + "rehomes_total", Help: "Requests re-homed to another node, by cause.",
		}, []string{"cause"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: balancerPrefix + "sessions_lost_total", Help: "In-memory sessions lost by re-homing, by cause (counted about once per session).",
		}, []string{"cause"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: balancerPrefix + "retries_total", Help: "Requests retried once on another node after a connection error.",
		}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: balancerPrefix + "ejections_total", Help: "Passive ejections of a node after a connection error.",
		}, []string{"node"}),
		connErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: balancerPrefix + "conn_errors_total", Help: "Connections to a node closed or reset without an answer while the node still accepted new ones, so not ejected.",
		}, []string{"node"}),
		noNode: prometheus.NewCounter(prometheus.CounterOpts{
			Name: balancerPrefix + "no_node_total", Help: "Requests answered 503 because no node could take them, or no connection to a node could be made for them.",
		}),
		tagged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: balancerPrefix + "route_tag_mismatch_total", Help: "Answers of a node that set the session cookie to an ID whose route tag is not the node's name: name the backend after the node's route tag.",
		}, []string{"node"}),
	}
	m.hit = m.affinity.WithLabelValues(affinityHit)
	m.miss = m.affinity.WithLabelValues(affinityMiss)
	m.rehome = m.affinity.WithLabelValues(affinityRehome)
	m.nodes.Store(&map[string]*nodeSeries{})

	if err := registerAll(reg, m.requests, m.duration, m.affinity, m.rehomes, m.lost,
		m.retries, m.ejections, m.connErrors, m.noNode, m.tagged); err != nil {
		return nil, fmt.Errorf("sessionmetrics: registering the balancer's metrics: %w", err)
	}
	return m, nil
}

// node returns the series of a node added and not removed, or nil.
func (m *Balancer) node(name string) *nodeSeries { return (*m.nodes.Load())[name] }

// NodeAdded creates the node's series of requests_total (every class, at
// zero) and request_duration_seconds. It implements balancer.Observer.
func (m *Balancer) NodeAdded(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	label := labelValue(node)
	s := &nodeSeries{duration: m.duration.WithLabelValues(label)}
	for i, c := range statusClasses {
		s.classes[i] = m.requests.WithLabelValues(label, c)
	}
	next := maps.Clone(*m.nodes.Load())
	next[node] = s
	m.nodes.Store(&next)
}

// NodeRemoved deletes every series labelled with the node, so that a
// removed node leaves none behind. It implements balancer.Observer.
func (m *Balancer) NodeRemoved(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := maps.Clone(*m.nodes.Load())
	delete(next, node)
	m.nodes.Store(&next)
	label := labelValue(node)
	m.requests.DeletePartialMatch(prometheus.Labels{"node": label})
	m.duration.DeleteLabelValues(label)
	m.ejections.DeleteLabelValues(label)
	m.connErrors.DeleteLabelValues(label)
	m.tagged.DeleteLabelValues(label)
}

// RequestDone counts the request in requests_total{node,class}, where
// class is 1xx to 5xx, or error for status 0 (no answer), and observes d
// in request_duration_seconds{node}. A request of a node not added, or
// already removed, is not counted. It implements balancer.Observer.
func (m *Balancer) RequestDone(node string, status int, d time.Duration) {
	s := m.node(node)
	if s == nil {
		return
	}
	class := 0
	if status >= 100 && status <= 599 {
		class = status / 100
	}
	s.classes[class].Inc()
	s.duration.Observe(d.Seconds())
}

// Affinity counts affinity_total{result} and, for a rehome,
// rehomes_total{cause}. It implements balancer.Observer.
func (m *Balancer) Affinity(result, cause string) {
	switch result {
	case affinityHit:
		m.hit.Inc()
	case affinityMiss:
		m.miss.Inc()
	case affinityRehome:
		m.rehome.Inc()
		m.rehomes.WithLabelValues(labelValue(cause)).Inc()
	default:
		m.affinity.WithLabelValues(labelValue(result)).Inc()
	}
}

// SessionLost counts sessions_lost_total{cause}. It implements
// balancer.Observer.
func (m *Balancer) SessionLost(cause string) { m.lost.WithLabelValues(labelValue(cause)).Inc() }

// Retried counts retries_total. It implements balancer.Observer.
func (m *Balancer) Retried() { m.retries.Inc() }

// Ejected counts ejections_total{node}, for a node added and not
// removed. It implements balancer.Observer.
func (m *Balancer) Ejected(node string) {
	if m.node(node) != nil {
		m.ejections.WithLabelValues(labelValue(node)).Inc()
	}
}

// ConnError counts conn_errors_total{node}, for a node added and not
// removed. It implements balancer.Observer.
func (m *Balancer) ConnError(node string) {
	if m.node(node) != nil {
		m.connErrors.WithLabelValues(labelValue(node)).Inc()
	}
}

// NoNode counts no_node_total. It implements balancer.Observer.
func (m *Balancer) NoNode() { m.noNode.Inc() }

// RouteTagMismatch counts route_tag_mismatch_total{node}, for a node added
// and not removed; the tag, which the balancer logs, is not a label. It
// implements balancer.Observer.
func (m *Balancer) RouteTagMismatch(node, tag string) {
	if m.node(node) != nil {
		m.tagged.WithLabelValues(labelValue(node)).Inc()
	}
}

// NodeGauge is one balancer node's state, read at a scrape: the fields of
// balancer.NodeStatus that WatchNodes exports.
type NodeGauge struct {
	Name     string
	Healthy  bool   // passes its health checks: node_up
	State    string // active, draining, drained, down or ejected: node_state
	InFlight int64  // requests being proxied to it: node_inflight
	Sessions int    // distinct affinity keys seen recently: node_sessions
}

// WatchNodes registers a collector that calls nodes at every scrape and
// exports, for each node it returns, the gauges node_up{node} (1 if
// healthy, else 0), node_state{node,state} (1 for its state),
// node_inflight{node} and node_sessions{node}. nodes must be safe for
// concurrent use and return each node once; with a balancer b it is
//
//	func() []sessionmetrics.NodeGauge {
//		var gs []sessionmetrics.NodeGauge
//		for _, st := range b.Nodes() {
//			gs = append(gs, sessionmetrics.NodeGauge{Name: st.Name, Healthy: st.Healthy,
//				State: st.State, InFlight: st.InFlight, Sessions: st.Sessions})
//		}
//		return gs
//	}
//
// It returns an error if the gauges are already registered with the
// Registerer (WatchNodes called twice).
func (m *Balancer) WatchNodes(nodes func() []NodeGauge) error {
	if nodes == nil {
		return errors.New("sessionmetrics: WatchNodes with a nil function")
	}
	if err := m.reg.Register(&nodeCollector{nodes}); err != nil {
		return fmt.Errorf("sessionmetrics: watching the balancer's nodes: %w", err)
	}
	return nil
}

var (
	upDesc       = prometheus.NewDesc(balancerPrefix+"node_up", "1 if the node passes its health checks.", []string{"node"}, nil)
	stateDesc    = prometheus.NewDesc(balancerPrefix+"node_state", "1 for the node's current state.", []string{"node", "state"}, nil)
	inflightDesc = prometheus.NewDesc(balancerPrefix+"node_inflight", "Requests in flight on the node.", []string{"node"}, nil)
	sessionsDesc = prometheus.NewDesc(balancerPrefix+"node_sessions", "Distinct affinity keys seen on the node recently (approximate session count).", []string{"node"}, nil)
)

// nodeCollector reports the nodes' gauges at scrape time.
type nodeCollector struct{ nodes func() []NodeGauge }

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	ch <- stateDesc
	ch <- inflightDesc
	ch <- sessionsDesc
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.nodes() {
		name := labelValue(g.Name)
		up := 0.0
		if g.Healthy {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, 1, name, labelValue(g.State))
		ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(g.InFlight), name)
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(g.Sessions), name)
	}
}
