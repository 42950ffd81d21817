package sessionmetrics_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sessionkit/sessionkit/sessionmetrics"
)

// This file must not import the balancer package: sessionmetrics' module
// would then require the balancer's, and every user of sessionmetrics
// would get fasthttp. The events are sent as the balancer sends them;
// cmd/sessionkit/internal/cli checks that the Balancer is a
// balancer.Observer and that the label values agree.

// newBalancerMetrics returns a Balancer on a registry of its own, which
// checks the metrics it gathers (pedantic).
func newBalancerMetrics(t *testing.T) (*prometheus.Registry, *sessionmetrics.Balancer) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := sessionmetrics.NewBalancer(reg)
	if err != nil {
		t.Fatal(err)
	}
	return reg, m
}

var balancerMetricNames = []string{
	"sessionkit_balancer_requests_total", "sessionkit_balancer_request_duration_seconds",
	"sessionkit_balancer_affinity_total", "sessionkit_balancer_rehomes_total",
	"sessionkit_balancer_sessions_lost_total", "sessionkit_balancer_retries_total",
	"sessionkit_balancer_ejections_total", "sessionkit_balancer_conn_errors_total",
	"sessionkit_balancer_no_node_total", "sessionkit_balancer_node_up", "sessionkit_balancer_node_state",
	"sessionkit_balancer_node_inflight", "sessionkit_balancer_node_sessions",
	"sessionkit_balancer_route_tag_mismatch_total",
}

// TestBalancer_exposition sends one of each event and checks the whole
// exposition: names, help texts, types, labels and values, which
// dashboards rely on.
func TestBalancer_exposition(t *testing.T) {
	reg, m := newBalancerMetrics(t)
	m.NodeAdded("n1")
	m.NodeAdded("n2")
	m.Affinity("hit", "")
	m.RequestDone("n1", 200, 3*time.Millisecond)
	m.Affinity("miss", "")
	m.RequestDone("n2", 404, 30*time.Millisecond)
	m.Affinity("rehome", "node_down")
	m.SessionLost("node_down")
	m.Ejected("n2")
	m.Retried()
	m.RequestDone("n1", 502, 2*time.Second)
	m.ConnError("n1")
	m.RequestDone("n1", 0, 20*time.Second)
	m.Affinity("miss", "")
	m.NoNode()
	m.RouteTagMismatch("n2", "node2")
	m.RouteTagMismatch("n2", "node2")
	gauges := []sessionmetrics.NodeGauge{
		{Name: "n1", Healthy: true, State: "active", InFlight: 2, Sessions: 40},
		{Name: "n2", Healthy: true, State: "ejected", Sessions: 3},
	}
	if err := m.WatchNodes(func() []sessionmetrics.NodeGauge { return gauges }); err != nil {
		t.Fatal(err)
	}

	want := `
# HELP sessionkit_balancer_affinity_total Requests by affinity result: hit (sent to its node), miss (no usable affinity), rehome (its node could not take it).
# TYPE sessionkit_balancer_affinity_total counter
sessionkit_balancer_affinity_total{result="hit"} 1
sessionkit_balancer_affinity_total{result="miss"} 2
sessionkit_balancer_affinity_total{result="rehome"} 1
# HELP sessionkit_balancer_conn_errors_total Connections to a node closed or reset without an answer while the node still accepted new ones, so not ejected.
# TYPE sessionkit_balancer_conn_errors_total counter
sessionkit_balancer_conn_errors_total{node="n1"} 1
# HELP sessionkit_balancer_ejections_total Passive ejections of a node after a connection error.
# TYPE sessionkit_balancer_ejections_total counter
sessionkit_balancer_ejections_total{node="n2"} 1
# HELP sessionkit_balancer_no_node_total Requests answered 503 because no node could take them, or no connection to a node could be made for them.
# TYPE sessionkit_balancer_no_node_total counter
sessionkit_balancer_no_node_total 1
# HELP sessionkit_balancer_node_inflight Requests in flight on the node.
# TYPE sessionkit_balancer_node_inflight gauge
sessionkit_balancer_node_inflight{node="n1"} 2
sessionkit_balancer_node_inflight{node="n2"} 0
# HELP sessionkit_balancer_node_sessions Distinct affinity keys seen on the node recently (approximate session count).
# TYPE sessionkit_balancer_node_sessions gauge
sessionkit_balancer_node_sessions{node="n1"} 40
sessionkit_balancer_node_sessions{node="n2"} 3
# HELP sessionkit_balancer_node_state 1 for the node's current state.
# TYPE sessionkit_balancer_node_state gauge
sessionkit_balancer_node_state{node="n1",state="active"} 1
sessionkit_balancer_node_state{node="n2",state="ejected"} 1
# HELP sessionkit_balancer_node_up 1 if the node passes its health checks.
# TYPE sessionkit_balancer_node_up gauge
sessionkit_balancer_node_up{node="n1"} 1
sessionkit_balancer_node_up{node="n2"} 1
# HELP sessionkit_balancer_rehomes_total Requests re-homed to another node, by cause.
# TYPE sessionkit_balancer_rehomes_total counter
sessionkit_balancer_rehomes_total{cause="node_down"} 1
# HELP sessionkit_balancer_request_duration_seconds Time to proxy a request, response body included.
# TYPE sessionkit_balancer_request_duration_seconds histogram
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.0005"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.001"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.0025"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.005"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.01"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.025"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.05"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.1"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.25"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="0.5"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="1"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="2.5"} 2
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="5"} 2
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="10"} 2
sessionkit_balancer_request_duration_seconds_bucket{node="n1",le="+Inf"} 3
sessionkit_balancer_request_duration_seconds_sum{node="n1"} 22.003
sessionkit_balancer_request_duration_seconds_count{node="n1"} 3
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.0005"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.001"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.0025"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.005"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.01"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.025"} 0
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.05"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.1"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.25"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="0.5"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="1"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="2.5"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="5"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="10"} 1
sessionkit_balancer_request_duration_seconds_bucket{node="n2",le="+Inf"} 1
sessionkit_balancer_request_duration_seconds_sum{node="n2"} 0.03
sessionkit_balancer_request_duration_seconds_count{node="n2"} 1
# HELP sessionkit_balancer_requests_total Proxied requests by node and status class (error: no answer from any node).
# TYPE sessionkit_balancer_requests_total counter
sessionkit_balancer_requests_total{class="1xx",node="n1"} 0
sessionkit_balancer_requests_total{class="1xx",node="n2"} 0
sessionkit_balancer_requests_total{class="2xx",node="n1"} 1
sessionkit_balancer_requests_total{class="2xx",node="n2"} 0
sessionkit_balancer_requests_total{class="3xx",node="n1"} 0
sessionkit_balancer_requests_total{class="3xx",node="n2"} 0
sessionkit_balancer_requests_total{class="4xx",node="n1"} 0
sessionkit_balancer_requests_total{class="4xx",node="n2"} 1
sessionkit_balancer_requests_total{class="5xx",node="n1"} 1
sessionkit_balancer_requests_total{class="5xx",node="n2"} 0
sessionkit_balancer_requests_total{class="error",node="n1"} 1
sessionkit_balancer_requests_total{class="error",node="n2"} 0
# HELP sessionkit_balancer_route_tag_mismatch_total Answers of a node that set the session cookie to an ID whose route tag is not the node's name: name the backend after the node's route tag.
# TYPE sessionkit_balancer_route_tag_mismatch_total counter
sessionkit_balancer_route_tag_mismatch_total{node="n2"} 2
# HELP sessionkit_balancer_retries_total Requests retried once on another node after a connection error.
# TYPE sessionkit_balancer_retries_total counter
sessionkit_balancer_retries_total 1
# HELP sessionkit_balancer_sessions_lost_total In-memory sessions lost by re-homing, by cause (counted about once per session).
# TYPE sessionkit_balancer_sessions_lost_total counter
sessionkit_balancer_sessions_lost_total{cause="node_down"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), balancerMetricNames...); err != nil {
		t.Error(err)
	}

	// A second watcher on the same registry is refused, as is nil.
	if err := m.WatchNodes(func() []sessionmetrics.NodeGauge { return nil }); err == nil {
		t.Error("WatchNodes twice: nil error; want one")
	}
	if err := m.WatchNodes(nil); err == nil {
		t.Error("WatchNodes(nil): nil error; want one")
	}
}

// TestBalancer_fresh: before any event, the affinity results and each
// added node's request series exist at zero, so that rate() sees their
// first increment; the rest appear with their first event.
func TestBalancer_fresh(t *testing.T) {
	reg, m := newBalancerMetrics(t)
	m.NodeAdded("n1")
	var got []string
	for k, v := range samples(t, reg) {
		got = append(got, k)
		if v != 0 {
			t.Errorf("%s = %v before any event; want 0", k, v)
		}
	}
	slices.Sort(got)
	want := []string{
		`sessionkit_balancer_affinity_total{result="hit"}`,
		`sessionkit_balancer_affinity_total{result="miss"}`,
		`sessionkit_balancer_affinity_total{result="rehome"}`,
		`sessionkit_balancer_no_node_total`,
		`sessionkit_balancer_request_duration_seconds_count{node="n1"}`,
		`sessionkit_balancer_request_duration_seconds_sum{node="n1"}`,
		`sessionkit_balancer_requests_total{class="1xx",node="n1"}`,
		`sessionkit_balancer_requests_total{class="2xx",node="n1"}`,
		`sessionkit_balancer_requests_total{class="3xx",node="n1"}`,
		`sessionkit_balancer_requests_total{class="4xx",node="n1"}`,
		`sessionkit_balancer_requests_total{class="5xx",node="n1"}`,
		`sessionkit_balancer_requests_total{class="error",node="n1"}`,
		`sessionkit_balancer_retries_total`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("series before any event:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBalancer_nodeRemoved: a removed node leaves no series behind, and a
// request that ends on it afterwards does not bring them back; nor do
// events of a node never added.
func TestBalancer_nodeRemoved(t *testing.T) {
	reg, m := newBalancerMetrics(t)
	for _, n := range []string{"n1", "n2"} {
		m.NodeAdded(n)
		m.RequestDone(n, 200, time.Millisecond)
		m.Ejected(n)
		m.ConnError(n)
		m.RouteTagMismatch(n, "x")
	}
	m.NodeRemoved("n2")
	m.RequestDone("n2", 200, time.Millisecond) // in flight when it was removed
	m.Ejected("n2")
	m.ConnError("n2")
	m.RouteTagMismatch("n2", "x")
	m.RouteTagMismatch("n9", "x")
	m.RequestDone("n9", 200, time.Millisecond) // never added
	m.Ejected("n9")
	for k := range samples(t, reg) {
		if strings.Contains(k, `node="n2"`) || strings.Contains(k, `node="n9"`) {
			t.Errorf("%s: want no series of a removed or unknown node", k)
		}
	}
	got := samples(t, reg)
	for _, k := range []string{
		`sessionkit_balancer_requests_total{class="2xx",node="n1"}`,
		`sessionkit_balancer_request_duration_seconds_count{node="n1"}`,
		`sessionkit_balancer_ejections_total{node="n1"}`,
		`sessionkit_balancer_conn_errors_total{node="n1"}`,
		`sessionkit_balancer_route_tag_mismatch_total{node="n1"}`,
	} {
		if got[k] != 1 {
			t.Errorf("%s = %v; want 1", k, got[k])
		}
	}

	// Added again: its series start over.
	m.NodeAdded("n2")
	m.RequestDone("n2", 500, time.Millisecond)
	got = samples(t, reg)
	if k := `sessionkit_balancer_requests_total{class="5xx",node="n2"}`; got[k] != 1 {
		t.Errorf("%s = %v; want 1", k, got[k])
	}
	if k := `sessionkit_balancer_requests_total{class="2xx",node="n2"}`; got[k] != 0 {
		t.Errorf("%s = %v; want 0", k, got[k])
	}
}

// TestBalancer_oddValues: statuses outside 100..599 count as error, and
// label values the balancer does not send (an unknown result, invalid
// UTF-8) are counted under a valid label value, never a panic.
func TestBalancer_oddValues(t *testing.T) {
	reg, m := newBalancerMetrics(t)
	m.NodeAdded("n\xff")
	for _, status := range []int{-1, 99, 600, 1000} {
		m.RequestDone("n\xff", status, time.Millisecond)
	}
	m.Affinity("sideways", "")
	m.Affinity("rehome", "cause\xff")
	m.SessionLost("\xff")
	m.Ejected("n\xff")
	if err := m.WatchNodes(func() []sessionmetrics.NodeGauge {
		return []sessionmetrics.NodeGauge{{Name: "n\xff", State: "odd\xff"}}
	}); err != nil {
		t.Fatal(err)
	}
	got := samples(t, reg)
	for k, want := range map[string]float64{
		"sessionkit_balancer_requests_total{class=\"error\",node=\"n\ufffd\"}": 4,
		"sessionkit_balancer_affinity_total{result=\"sideways\"}":              1,
		"sessionkit_balancer_rehomes_total{cause=\"cause\ufffd\"}":             1,
		"sessionkit_balancer_sessions_lost_total{cause=\"\ufffd\"}":            1,
		"sessionkit_balancer_ejections_total{node=\"n\ufffd\"}":                1,
		"sessionkit_balancer_node_state{node=\"n\ufffd\",state=\"odd\ufffd\"}": 1,
		"sessionkit_balancer_node_up{node=\"n\ufffd\"}":                        0,
	} {
		if g, ok := got[k]; !ok || g != want {
			t.Errorf("%s = %v (present %v); want %v", k, g, ok, want)
		}
	}
}

func TestNewBalancer_errors(t *testing.T) {
	if m, err := sessionmetrics.NewBalancer(nil); err == nil || m != nil {
		t.Errorf("NewBalancer(nil) = %v, %v; want nil and an error", m, err)
	}
	reg := prometheus.NewRegistry()
	if _, err := sessionmetrics.NewBalancer(reg); err != nil {
		t.Fatal(err)
	}
	second, err := sessionmetrics.NewBalancer(reg)
	if err == nil || second != nil {
		t.Fatalf("second NewBalancer on one registry = %v, %v; want nil and an error", second, err)
	}
	if !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		t.Errorf("error %v; want one wrapping prometheus.AlreadyRegisteredError", err)
	}

	// A registry that holds one of the later names: NewBalancer fails and
	// unregisters the ones it had registered.
	checkRollback(t, "sessionkit_balancer_no_node_total", func(reg prometheus.Registerer) error {
		_, err := sessionmetrics.NewBalancer(reg)
		return err
	})

	// The session metrics and the balancer's share a registry.
	reg = prometheus.NewRegistry()
	if _, err := sessionmetrics.New(reg, sessionmetrics.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sessionmetrics.NewBalancer(reg); err != nil {
		t.Errorf("NewBalancer next to New: %v", err)
	}
}

// The Observer methods a request calls must not allocate.
func TestBalancer_observerAllocs(t *testing.T) {
	m, err := sessionmetrics.NewBalancer(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.NodeAdded("n1")
	m.Affinity("rehome", "node_down") // create the series: later events find them
	m.SessionLost("node_down")
	if n := testing.AllocsPerRun(100, func() {
		m.Affinity("hit", "")
		m.Affinity("miss", "")
		m.RequestDone("n1", 200, time.Millisecond)
		m.RequestDone("n1", 0, time.Millisecond)
		m.Affinity("rehome", "node_down")
		m.SessionLost("node_down")
		m.Retried()
		m.NoNode()
	}); n != 0 {
		t.Errorf("the request events allocate %v times; want 0", n)
	}
}

// BenchmarkBalancer_request is what a sticky request costs the metrics:
// an affinity hit and a finished request.
func BenchmarkBalancer_request(b *testing.B) {
	m, err := sessionmetrics.NewBalancer(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		m.NodeAdded(n)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Affinity("hit", "")
			m.RequestDone("n2", 200, 3*time.Millisecond)
		}
	})
}
