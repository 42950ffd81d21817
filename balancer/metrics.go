package balancer

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, all prefixed sessionkit_balancer_:
//
//	requests_total{node,class}            proxied requests by node and status class (2xx..5xx, "error": no answer)
//	request_duration_seconds{node}        histogram of the time to proxy a request, body included
//	affinity_total{result}                requests by affinity result: hit, miss (no usable affinity), rehome
//	rehomes_total{cause}                  re-homed requests: node_down, drain_deadline, node_removed, unknown_node
//	sessions_lost_total{cause}            sessions lost by re-homing (in-memory sessions only), about once per session
//	retries_total                         requests retried on another node after a connection error
//	ejections_total{node}                 passive ejections after connection errors
//	conn_errors_total{node}               connection errors that did not eject the node (it still accepted connections)
//	no_node_total                         requests answered 503 because no node could take them, or none could be connected to
//	node_up{node}                         1 if the node passes its health checks
//	node_state{node,state}                1 for the node's current state
//	node_inflight{node}                   requests in flight on the node
//	node_sessions{node}                   distinct affinity keys seen recently (see Config.SessionWindow)
type metrics struct {
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
}

// nodeMetrics are a node's pre-resolved series, so that a request costs
// no label lookup.
type nodeMetrics struct {
	classes  [6]prometheus.Counter // "error", 1xx..5xx
	duration prometheus.Observer
}

const ns = "sessionkit_balancer_"

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "requests_total", Help: "Proxied requests by node and status class (error: no answer from any node).",
		}, []string{"node", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ns + "request_duration_seconds", Help: "Time to proxy a request, response body included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"node"}),
		affinity: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "affinity_total", Help: "Requests by affinity result: hit (sent to its node), miss (no usable affinity), rehome (its node could not take it).",
		}, []string{"result"}),
		rehomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "rehomes_total", Help: "Requests re-homed to another node, by cause.",
		}, []string{"cause"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "sessions_lost_total", Help: "In-memory sessions lost by re-homing, by cause (counted about once per session).",
		}, []string{"cause"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: ns + "retries_total", Help: "Requests retried once on another node after a connection error.",
		}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "ejections_total", Help: "Passive ejections of a node after a connection error.",
		}, []string{"node"}),
		connErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "conn_errors_total", Help: "Connections to a node closed or reset without an answer while the node still accepted new ones, so not ejected.",
		}, []string{"node"}),
		noNode: prometheus.NewCounter(prometheus.CounterOpts{
			Name: ns + "no_node_total", Help: "Requests answered 503 because no node could take them, or no connection to a node could be made for them.",
		}),
	}
	m.hit = m.affinity.WithLabelValues("hit")
	m.miss = m.affinity.WithLabelValues("miss")
	m.rehome = m.affinity.WithLabelValues("rehome")
	return m
}

func (m *metrics) forNode(name string) nodeMetrics {
	var nm nodeMetrics
	for i, c := range []string{"error", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		nm.classes[i] = m.requests.WithLabelValues(name, c)
	}
	nm.duration = m.duration.WithLabelValues(name)
	return nm
}

func (m *metrics) dropNode(name string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"node": name})
	m.duration.DeleteLabelValues(name)
	m.ejections.DeleteLabelValues(name)
	m.connErrors.DeleteLabelValues(name)
}

// register registers the metrics and a collector of the node gauges.
func (m *metrics) register(r prometheus.Registerer, b *Balancer) error {
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.affinity, m.rehomes, m.lost,
		m.retries, m.ejections, m.connErrors, m.noNode, nodeCollector{b}} {
		if err := r.Register(c); err != nil {
			return errors.Join(ErrConfig, err)
		}
	}
	return nil
}

var (
	upDesc       = prometheus.NewDesc(ns+"node_up", "1 if the node passes its health checks.", []string{"node"}, nil)
	stateDesc    = prometheus.NewDesc(ns+"node_state", "1 for the node's current state.", []string{"node", "state"}, nil)
	inflightDesc = prometheus.NewDesc(ns+"node_inflight", "Requests in flight on the node.", []string{"node"}, nil)
	sessionsDesc = prometheus.NewDesc(ns+"node_sessions", "Distinct affinity keys seen on the node recently (approximate session count).", []string{"node"}, nil)
)

// nodeCollector reports the current nodes' gauges at scrape time.
type nodeCollector struct{ b *Balancer }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	ch <- stateDesc
	ch <- inflightDesc
	ch <- sessionsDesc
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.b.Nodes() {
		up := 0.0
		if st.Healthy {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, st.Name)
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, 1, st.Name, st.State)
		ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(st.InFlight), st.Name)
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(st.Sessions), st.Name)
	}
}
