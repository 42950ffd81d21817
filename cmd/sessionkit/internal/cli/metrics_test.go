package cli_test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sessionkit/sessionkit/balancer"
	"github.com/sessionkit/sessionkit/sessionmetrics"
)

// scrape fetches url (a /metrics endpoint) in the text format and returns
// every sample of the families starting with prefix under its name and
// labels, as in the text format: `name{a="x",b="y"}`, or `name`. A
// histogram gives name_count.
func scrape(t *testing.T, url, prefix string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: status %d, Content-Type %q; want 200 and text/plain (body %.200s)",
			resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parsing: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			sort.Strings(ls)
			labels := ""
			if len(ls) > 0 {
				labels = "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name+labels] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name+labels] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[name+labels] = m.GetUntyped().GetValue()
			case m.Histogram != nil:
				out[name+"_count"+labels] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestServe_metrics runs serve with the memory strategy, sends known
// traffic, and checks that the counters at /metrics moved by exactly that,
// and that scrapes themselves move nothing.
func TestServe_metrics(t *testing.T) {
	srv := startServe(t, nil, "serve", "--strategy", "memory", "--addr", "127.0.0.1:0", "--insecure-cookie",
		"--node", "m1", "--log-level", "error")
	metricsURL := srv.url + "/metrics"

	before := scrape(t, metricsURL, "sessionkit_")
	for k, v := range before {
		if v != 0 {
			t.Errorf("before any request: %s = %v; want 0", k, v)
		}
	}
	for _, k := range []string{
		`sessionkit_session_events_total{event="created"}`,
		`sessionkit_store_calls_total{op="load",result="ok"}`,
		`sessionkit_store_call_duration_seconds_count{op="load"}`,
		`sessionkit_memstore_entries{store="memory"}`,
		`sessionkit_memstore_evictions_total{store="memory"}`,
	} {
		if _, ok := before[k]; !ok {
			t.Errorf("before any request: %s missing; want it at 0", k)
		}
	}

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	var aliceCookie string
	for _, step := range []struct {
		method, path, body, cookie string
		status                     int
	}{
		{"POST", "/login", `{"user":"alice"}`, "", 200},    // save
		{"POST", "/cart", `{"item":"a"}`, "", 200},         // load, save
		{"POST", "/cart", `{"item":"b"}`, "", 200},         // load, save
		{"GET", "/cart", "", "", 200},                      // load
		{"POST", "/logout", "", "", 200},                   // load, delete
		{"GET", "/cart", "", "session=garbage", 401},       // unreadable token: no store call
		{"GET", "/cart", "", "(alice's, logged out)", 401}, // load: not found
	} {
		req, err := http.NewRequest(step.method, srv.url+step.path, strings.NewReader(step.body))
		if err != nil {
			t.Fatal(err)
		}
		if step.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		client := c
		if step.cookie != "" {
			client = &http.Client{Timeout: 5 * time.Second} // no jar: the cookie below only
			cookie := step.cookie
			if strings.HasPrefix(cookie, "(") {
				cookie = aliceCookie
			}
			req.Header.Set("Cookie", cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", step.method, step.path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != step.status {
			t.Errorf("%s %s: status %d; want %d", step.method, step.path, resp.StatusCode, step.status)
		}
		if step.path == "/login" {
			for _, ck := range resp.Cookies() {
				if ck.Name == "session" {
					aliceCookie = ck.Name + "=" + ck.Value
				}
			}
		}
	}
	if aliceCookie == "" {
		t.Fatal("login set no session cookie")
	}

	want := map[string]float64{
		`sessionkit_session_events_total{event="created"}`:           1,
		`sessionkit_session_events_total{event="destroyed"}`:         1,
		`sessionkit_store_calls_total{op="load",result="ok"}`:        4,
		`sessionkit_store_calls_total{op="load",result="not_found"}`: 1,
		`sessionkit_store_calls_total{op="save",result="ok"}`:        3,
		`sessionkit_store_calls_total{op="delete",result="ok"}`:      1,
		`sessionkit_store_call_duration_seconds_count{op="load"}`:    5,
		`sessionkit_store_call_duration_seconds_count{op="save"}`:    3,
		`sessionkit_store_call_duration_seconds_count{op="delete"}`:  1,
		`sessionkit_memstore_entries{store="memory"}`:                0,
		`sessionkit_memstore_evictions_total{store="memory"}`:        0,
	}
	for range 2 { // a second scrape: scrapes cost no store call
		got := scrape(t, metricsURL, "sessionkit_")
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v; want %v", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok && v != 0 && !strings.Contains(k, "memstore_bytes") {
				t.Errorf("%s = %v; want 0", k, v)
			}
			if strings.HasPrefix(k, "sessionkit_breaker_") {
				t.Errorf("%s with the memory strategy; want no breaker metrics", k)
			}
		}
	}
	runtimeMetrics := scrape(t, metricsURL, "")
	if runtimeMetrics["go_goroutines"] == 0 {
		t.Error("go_goroutines missing or 0; want the Go collector's metrics")
	}
	if _, ok := runtimeMetrics["process_start_time_seconds"]; !ok && runtime.GOOS == "linux" {
		t.Error("process_start_time_seconds missing; want the process collector's metrics")
	}

	// Exactly /metrics: GET and HEAD only, with X-Node; neighbours go to the app.
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"HEAD", "/metrics", 200, "text/plain"},
		{"POST", "/metrics", 405, "text/plain"},
		{"GET", "/metrics/", 404, "application/json"},
		{"GET", "/metricsx", 404, "application/json"},
	} {
		req, _ := http.NewRequest(tc.method, srv.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) ||
			resp.Header.Get("X-Node") != "m1" {
			t.Errorf("%s %s: status %d, Content-Type %q, X-Node %q; want %d, %s, m1", tc.method, tc.path,
				resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Node"), tc.status, tc.ctype)
		}
	}
	srv.stop(t)
}

// TestBalancerMetrics_labels: sessionmetrics does not import the balancer
// (its users would get fasthttp), so it has its own copies of the
// balancer's affinity results and re-home causes. They must agree with the
// balancer's constants, and both with the documented label values, or a
// re-home would be counted under a label no dashboard knows.
func TestBalancerMetrics_labels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	bm, err := sessionmetrics.NewBalancer(reg)
	if err != nil {
		t.Fatal(err)
	}
	var obs balancer.Observer = bm
	obs.Affinity(balancer.AffinityHit, "")
	obs.Affinity(balancer.AffinityMiss, "")
	for _, c := range []string{balancer.CauseNodeDown, balancer.CauseDrainDeadline, balancer.CauseNodeRemoved, balancer.CauseUnknownNode} {
		obs.Affinity(balancer.AffinityRehome, c)
		obs.SessionLost(c)
	}
	causes := map[string]float64{"node_down": 1, "drain_deadline": 1, "node_removed": 1, "unknown_node": 1}
	want := map[string]map[string]float64{
		"sessionkit_balancer_affinity_total":      {"hit": 1, "miss": 1, "rehome": 4},
		"sessionkit_balancer_rehomes_total":       causes,
		"sessionkit_balancer_sessions_lost_total": causes,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		w, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		got := map[string]float64{}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
		if !maps.Equal(got, w) {
			t.Errorf("%s by label: %v; want %v", mf.GetName(), got, w)
		}
		delete(want, mf.GetName())
	}
	for name := range want {
		t.Errorf("%s missing", name)
	}
}
