package lab_test

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/lab"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

// metrics reads the Prometheus endpoint at url: each metric's samples,
// by family name.
func metrics(t *testing.T, url string) map[string][]*model.Sample {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	dec := expfmt.NewDecoder(resp.Body, expfmt.NewFormat(expfmt.TypeTextPlain))
	out := map[string][]*model.Sample{}
	sd := expfmt.SampleDecoder{Dec: dec, Opts: &expfmt.DecodeOptions{Timestamp: model.Now()}}
	for {
		var v model.Vector
		if err := sd.Decode(&v); err != nil {
			break
		}
		for _, s := range v {
			name := string(s.Metric[model.MetricNameLabel])
			out[name] = append(out[name], s)
		}
	}
	return out
}

// sum adds the samples of name whose label l is one of values (any, if
// none are given).
func sum(ms map[string][]*model.Sample, name, l string, values ...string) float64 {
	var n float64
	for _, s := range ms[name] {
		if len(values) > 0 && !containsStr(values, string(s.Metric[model.LabelName(l)])) {
			continue
		}
		n += float64(s.Value)
	}
	return n
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// within reports whether got is within 5% of want (or both are 0).
func within(got, want float64) bool {
	if want == 0 {
		return got == 0
	}
	return math.Abs(got-want)/want <= 0.05
}

// TestIndependentCount runs a short lab of the memory strategy behind
// sessionkit's balancer, with a node process killed, and counts the same
// things from outside the virtual users, on the balancer's metrics
// endpoint at the end of the run: the requests (every proxied request,
// sessionkit_balancer_requests_total), the failed ones (5xx and those no
// node answered) and the sessions lost (the balancer's
// sessions_lost_total, counted when it re-homes a user of the dead node).
// The lab's figures and the outside counts agree within 5%.
func TestIndependentCount(t *testing.T) {
	var front map[string][]*model.Sample
	rep, err := lab.Run(t.Context(), lab.Config{
		Binary:     testenv.Sessionkit(t),
		Strategies: []string{"memory"},
		Users:      30,
		Duration:   5 * time.Second,
		BeforeStop: func(ep lab.Endpoints) {
			front = metrics(t, ep.FrontMetrics)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	if r.Skipped != "" {
		t.Fatal(r.Skipped)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("\n%s", table.String())
	requests := sum(front, "sessionkit_balancer_requests_total", "")
	failed := sum(front, "sessionkit_balancer_requests_total", "class", "5xx", "error")
	lost := sum(front, "sessionkit_balancer_sessions_lost_total", "")
	t.Logf("requests: lab %d, balancer %.0f; failed: lab %d, balancer %.0f; sessions lost: lab %d (%d users), balancer %.0f",
		r.Requests, requests, r.Errors, failed, r.SessionsLost, r.UsersLost, lost)
	if !within(float64(r.Requests), requests) {
		t.Errorf("requests: lab %d, balancer %.0f; want within 5%%", r.Requests, requests)
	}
	// A request the lab counts as failed that the balancer does not is a
	// transport error between the user and the balancer: none here.
	if math.Abs(float64(r.Errors)-failed) > math.Max(1, 0.05*failed) {
		t.Errorf("failed requests: lab %d, balancer %.0f; want within 5%% (or 1)", r.Errors, failed)
	}
	if lost == 0 || !within(float64(r.SessionsLost), lost) {
		t.Errorf("sessions lost: lab %d, balancer %.0f; want some, within 5%%", r.SessionsLost, lost)
	}
}

// TestFronts runs the memory strategy behind HAProxy and nginx,
// configured as docs/balancer.md shows: each keeps its users on their
// node by the route tag (the only sessions lost are the killed node's:
// about a third of the users).
func TestFronts(t *testing.T) {
	testenv.Command(t, "haproxy")
	testenv.Command(t, "nginx")
	const users = 24
	rep, err := lab.Run(t.Context(), lab.Config{
		Binary:     testenv.Sessionkit(t),
		Strategies: []string{"memory"},
		Fronts:     []string{lab.FrontHAProxy, lab.FrontNginx},
		Users:      users,
		Duration:   3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("\n%s", table.String())
	if len(rep.Results) != 2 {
		t.Fatalf("%d rows; want one per front", len(rep.Results))
	}
	lost := 0
	for _, r := range rep.Results {
		if r.Skipped != "" {
			testenv.Missing(t, r.Front+": "+r.Skipped)
			continue
		}
		// At most the killed node's users, about a third: the others
		// stay on their node. (A front whose health check found n3 slow
		// at the start on a loaded machine homes nobody there, and then
		// loses nobody: the bound is an upper one.)
		if r.Requests < 100 || r.UsersLost > users*2/3 || r.UpdatesLost != 0 {
			t.Errorf("%s: %d requests, %d of %d users lost, %d updates lost; want at most about a third of the users lost, no update",
				r.Front, r.Requests, r.UsersLost, users, r.UpdatesLost)
		}
		lost += r.UsersLost
	}
	if lost == 0 {
		t.Error("no user lost a session behind either front; want the killed node's users counted")
	}
}

// TestRow_refusedFlag: a row whose serve flag serve refuses is skipped,
// with serve's reason.
func TestRow_refusedFlag(t *testing.T) {
	rep, err := lab.Run(t.Context(), lab.Config{
		Binary:     testenv.Sessionkit(t),
		Strategies: []string{"memory+near-cache"},
		Duration:   time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	if !strings.Contains(r.Skipped, "near-cache") || strings.Contains(r.Skipped, "\n") {
		t.Errorf("skipped %q; want one line of serve's reason, naming --near-cache", r.Skipped)
	}
}
