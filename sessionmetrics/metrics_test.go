package sessionmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/sessionmetrics"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/nearcache"
)

// clock is the tests' fake clock.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) }

// samples gathers g and returns every sample under its name and labels, as
// in the text format: `name{a="x",b="y"}`, or `name` without labels. A
// histogram gives name_count and name_sum.
func samples(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			labels := ""
			if len(ls) > 0 {
				labels = "{" + strings.Join(ls, ",") + "}"
			}
			name := mf.GetName()
			switch {
			case m.Counter != nil:
				out[name+labels] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name+labels] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name+"_count"+labels] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+labels] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// checkSamples compares the samples named in want, and reports every other
// sample of the listed metric families that is not zero.
func checkSamples(t *testing.T, got map[string]float64, want map[string]float64, families ...string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v; want %v", k, got[k], v)
		}
	}
	var extra []string
	for k, v := range got {
		if _, ok := want[k]; ok || v == 0 || strings.Contains(k, "_sum") {
			continue
		}
		for _, f := range families {
			if strings.HasPrefix(k, f+"{") || k == f {
				extra = append(extra, fmt.Sprintf("%s = %v", k, v))
			}
		}
	}
	sort.Strings(extra)
	for _, e := range extra {
		t.Errorf("unexpected sample %s; want 0", e)
	}
}

// app is a Manager over a store, driven through its Handler.
type app struct {
	t *testing.T
	m *session.Manager
	h http.Handler
}

func newApp(t *testing.T, cfg session.Config) *app {
	t.Helper()
	m, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Login(r.FormValue("user"))
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, _ := session.Value[string](session.From(r), "k")
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("k", r.FormValue("v"))
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy()
	})
	mux.HandleFunc("/logout-all", func(w http.ResponseWriter, r *http.Request) {
		n, err := m.DestroyUser(r.Context(), r.FormValue("user"))
		fmt.Fprint(w, n, err)
	})
	return &app{t: t, m: m, h: m.Handler(mux)}
}

// do runs one request with the session token tok ("" for none) and returns
// the response and the token it sets, or tok.
func (a *app) do(path, tok string) (*httptest.ResponseRecorder, string) {
	a.t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	if tok != "" {
		r.Header.Set("Cookie", "__Host-session="+tok)
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-session" {
			tok = c.Value
		}
	}
	return w, tok
}

// TestMetrics_traffic drives a Manager over a memstore with known traffic
// and checks every counter and histogram count.
func TestMetrics_traffic(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	ms, err := memstore.New(memstore.Config{Now: clk.Now, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	a := newApp(t, session.Config{Store: ms, Observer: sm, Now: clk.Now})

	_, alice := a.do("/login?user=alice", "") // save
	for range 3 {
		a.do("/get", alice) // load
	}
	a.do("/set?v=1", alice) // load, save
	a.do("/set?v=2", alice) // load, save
	clk.Advance(4 * time.Minute)
	a.do("/get", alice) // load, touch: more than TouchInterval (3m) since the last save
	unknown, _ := sid.New("")
	a.do("/get", unknown.String())     // load: not found
	a.do("/get", "garbage-token")      // no store call: unreadable token
	a.do("/login?user=carol", "")      // save
	a.do("/login?user=carol", "")      // save
	a.do("/logout-all?user=carol", "") // delete_user twice: two sweeps
	a.do("/logout", alice)             // load, delete
	if w, _ := a.do("/get", alice); w.Body.String() != "" {
		t.Errorf("after logout: %q; want an empty session", w.Body.String())
	} // load: not found

	got := samples(t, reg)
	checkSamples(t, got, map[string]float64{
		`sessionkit_session_events_total{event="created"}`:                  3,
		`sessionkit_session_events_total{event="destroyed"}`:                1,
		`sessionkit_session_events_total{event="user_revoked"}`:             1,
		`sessionkit_sessions_revoked_total`:                                 2,
		`sessionkit_store_calls_total{op="load",result="ok"}`:               7,
		`sessionkit_store_calls_total{op="load",result="not_found"}`:        2,
		`sessionkit_store_calls_total{op="save",result="ok"}`:               5,
		`sessionkit_store_calls_total{op="touch",result="ok"}`:              1,
		`sessionkit_store_calls_total{op="delete",result="ok"}`:             1,
		`sessionkit_store_calls_total{op="delete_user",result="ok"}`:        2,
		`sessionkit_store_call_duration_seconds_count{op="load"}`:           9,
		`sessionkit_store_call_duration_seconds_count{op="save"}`:           5,
		`sessionkit_store_call_duration_seconds_count{op="touch"}`:          1,
		`sessionkit_store_call_duration_seconds_count{op="delete"}`:         1,
		`sessionkit_store_call_duration_seconds_count{op="delete_user"}`:    2,
		`sessionkit_store_call_duration_seconds_count{op="list_user"}`:      0,
		`sessionkit_session_events_total{event="expired"}`:                  0,
		`sessionkit_store_calls_total{op="save",result="conflict"}`:         0,
		`sessionkit_store_calls_total{op="list_user",result="unavailable"}`: 0,
	}, "sessionkit_session_events_total", "sessionkit_sessions_revoked_total", "sessionkit_store_calls_total",
		"sessionkit_store_call_duration_seconds_count")

	// Every series exists from New on: 11 events, 6 ops x 6 results.
	if n := testutil.CollectAndCount(reg, "sessionkit_session_events_total"); n != 11 {
		t.Errorf("session_events_total has %d series; want 11", n)
	}
	if n := testutil.CollectAndCount(reg, "sessionkit_store_calls_total"); n != 36 {
		t.Errorf("store_calls_total has %d series; want 36", n)
	}
	checkLabels(t, reg)
}

// checkLabels fails if a label value is outside the fixed sets: no session
// name, ID or user ID may become a label.
func checkLabels(t *testing.T, g prometheus.Gatherer) {
	t.Helper()
	allowed := map[string][]string{
		"event": {"created", "renewed", "destroyed", "expired", "user_revoked", "conflict_retried",
			"conflict_gave_up", "degraded", "limit_evicted", "limit_refused", "adopted"},
		"op":     {"load", "save", "delete", "touch", "list_user", "delete_user"},
		"result": {"ok", "not_found", "conflict", "outage", "unavailable", "other"},
		"store":  {"memory", "redis"},
		"to":     {"closed", "half-open", "open"},
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !slices.Contains(allowed[lp.GetName()], lp.GetValue()) {
					t.Errorf("%s has label %s=%q, outside the fixed set", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

// conflicting makes the next n saves of an existing record lose their
// compare-and-set.
type conflicting struct {
	store.Store
	n atomic.Int32
}

func (c *conflicting) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	if rec.Version > 0 && c.n.Add(-1) >= 0 {
		return 0, fmt.Errorf("test: %w", store.ErrConflict)
	}
	return c.Store.Save(ctx, key, rec)
}

func TestMetrics_conflicts(t *testing.T) {
	reg := prometheus.NewRegistry()
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	st := &conflicting{Store: ms}
	a := newApp(t, session.Config{Store: st, Observer: sm, MaxRetries: 1})
	_, tok := a.do("/login?user=alice", "") // save
	st.n.Store(1)
	a.do("/set?v=1", tok) // load, save: conflict, reload (load), save
	st.n.Store(2)
	if w, _ := a.do("/set?v=2", tok); w.Code != http.StatusServiceUnavailable {
		t.Errorf("a save that keeps losing: status %d; want 503", w.Code)
	} // load, save: conflict, reload, save: conflict, give up

	checkSamples(t, samples(t, reg), map[string]float64{
		`sessionkit_session_events_total{event="created"}`:          1,
		`sessionkit_session_events_total{event="conflict_retried"}`: 2,
		`sessionkit_session_events_total{event="conflict_gave_up"}`: 1,
		`sessionkit_store_calls_total{op="load",result="ok"}`:       4,
		`sessionkit_store_calls_total{op="save",result="ok"}`:       2,
		`sessionkit_store_calls_total{op="save",result="conflict"}`: 3,
		`sessionkit_store_call_duration_seconds_count{op="save"}`:   5,
		`sessionkit_store_call_duration_seconds_count{op="load"}`:   4,
	}, "sessionkit_session_events_total", "sessionkit_store_calls_total", "sessionkit_store_call_duration_seconds_count")
}

// flaky fails its loads while down.
type flaky struct {
	store.Store
	down atomic.Bool
}

func (f *flaky) Load(ctx context.Context, key string) (store.Record, error) {
	if f.down.Load() {
		return store.Record{}, errors.New("flaky: connection refused")
	}
	return f.Store.Load(ctx, key)
}

// TestMetrics_breaker takes a store down behind a breaker and brings it
// back: outage, then unavailable, a failed probe, a good one.
func TestMetrics_breaker(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	ms, err := memstore.New(memstore.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	st := &flaky{Store: ms}
	b, err := breaker.New(breaker.Config{Failures: 2, OpenFor: time.Second, Now: clk.Now,
		OnStateChange: sm.BreakerHook("redis")})
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(t, session.Config{Store: breaker.Wrap(st, b), Observer: sm, FailOpen: true, Now: clk.Now})
	state := func() float64 { return samples(t, reg)[`sessionkit_breaker_state{store="redis"}`] }
	if _, ok := samples(t, reg)[`sessionkit_breaker_state{store="redis"}`]; !ok {
		t.Fatal("breaker_state{store=redis} missing after BreakerHook; want 0")
	}

	_, tok := a.do("/login?user=alice", "") // save ok
	st.down.Store(true)
	a.do("/get", tok) // outage
	if got := state(); got != 0 {
		t.Errorf("after one failure: breaker_state %v; want 0", got)
	}
	a.do("/get", tok) // outage: opens
	if got := state(); got != 2 {
		t.Errorf("after two failures: breaker_state %v; want 2 (open)", got)
	}
	if w, _ := a.do("/get", tok); w.Code != http.StatusOK {
		t.Errorf("fail-open request: status %d; want 200", w.Code)
	} // unavailable: not asked
	clk.Advance(time.Second)
	a.do("/get", tok) // half-open; the probe fails: open again
	if got := state(); got != 2 {
		t.Errorf("after a failed probe: breaker_state %v; want 2 (open)", got)
	}
	st.down.Store(false)
	clk.Advance(time.Second)
	if w, _ := a.do("/get", tok); w.Code != http.StatusOK || w.Body.String() != "" {
		t.Errorf("after recovery: %d %q", w.Code, w.Body.String())
	} // half-open; the probe succeeds: closed
	if got := state(); got != 0 {
		t.Errorf("after a good probe: breaker_state %v; want 0 (closed)", got)
	}

	checkSamples(t, samples(t, reg), map[string]float64{
		`sessionkit_breaker_state{store="redis"}`:                            0,
		`sessionkit_breaker_transitions_total{store="redis",to="open"}`:      2,
		`sessionkit_breaker_transitions_total{store="redis",to="half-open"}`: 2,
		`sessionkit_breaker_transitions_total{store="redis",to="closed"}`:    1,
		`sessionkit_store_calls_total{op="save",result="ok"}`:                1,
		`sessionkit_store_calls_total{op="load",result="outage"}`:            3,
		`sessionkit_store_calls_total{op="load",result="unavailable"}`:       1,
		`sessionkit_store_calls_total{op="load",result="ok"}`:                1,
		`sessionkit_session_events_total{event="created"}`:                   1,
		`sessionkit_session_events_total{event="degraded"}`:                  4,
	}, "sessionkit_breaker_transitions_total", "sessionkit_store_calls_total", "sessionkit_session_events_total")
	checkLabels(t, reg)
}

// TestMetrics_BreakerHook checks the gauge's values, the half-open one
// included, which a real breaker holds only during its probe.
func TestMetrics_BreakerHook(t *testing.T) {
	reg := prometheus.NewRegistry()
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hook := sm.BreakerHook("redis")
	for _, step := range []struct {
		from, to breaker.State
		want     float64
	}{
		{breaker.Closed, breaker.Open, 2},
		{breaker.Open, breaker.HalfOpen, 1},
		{breaker.HalfOpen, breaker.Closed, 0},
	} {
		hook(step.from, step.to)
		key := `sessionkit_breaker_state{store="redis"}`
		if got := samples(t, reg)[key]; got != step.want {
			t.Errorf("after %v -> %v: %s = %v; want %v", step.from, step.to, key, got, step.want)
		}
	}
}

func TestMetrics_StoreCall_results(t *testing.T) {
	open := &breaker.OpenError{Until: time.Now().Add(time.Second), Cause: errors.New("dial: refused")}
	for _, tc := range []struct {
		name string
		call session.StoreCall
		want string
	}{
		{"ok", session.StoreCall{Op: store.OpNameLoad}, "ok"},
		{"not found", session.StoreCall{Op: store.OpNameLoad, Err: fmt.Errorf("x: %w", store.ErrNotFound)}, "not_found"},
		{"conflict", session.StoreCall{Op: store.OpNameSave, Err: fmt.Errorf("x: %w", store.ErrConflict)}, "conflict"},
		{"outage", session.StoreCall{Op: store.OpNameSave, Err: errors.New("i/o timeout"), Outage: true}, "outage"},
		{"open breaker", session.StoreCall{Op: store.OpNameTouch, Err: open, Outage: true}, "unavailable"},
		{"invalid key", session.StoreCall{Op: store.OpNameDelete, Err: store.ErrInvalidKey}, "other"},
		{"canceled", session.StoreCall{Op: store.OpNameLoad, Err: context.Canceled}, "other"},
		{"new op", session.StoreCall{Op: "scan", Err: errors.New("down"), Outage: true}, "outage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sm.StoreCall(context.Background(), tc.call)
			key := fmt.Sprintf(`sessionkit_store_calls_total{op=%q,result=%q}`, tc.call.Op, tc.want)
			got := samples(t, reg)
			checkSamples(t, got, map[string]float64{key: 1}, "sessionkit_store_calls_total")
			if n := got[fmt.Sprintf(`sessionkit_store_call_duration_seconds_count{op=%q}`, tc.call.Op)]; n != 1 {
				t.Errorf("duration count %v; want 1", n)
			}
		})
	}
}

// DestroyUser on the token strategy ends an unknown number of sessions
// (Count -1): the event is counted, sessions_revoked_total does not move.
func TestMetrics_userRevokedUnknownCount(t *testing.T) {
	reg := prometheus.NewRegistry()
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sm.SessionEvent(context.Background(), session.Event{Kind: session.EventUserRevoked, Count: -1})
	got := samples(t, reg)
	if n := got[`sessionkit_session_events_total{event="user_revoked"}`]; n != 1 {
		t.Errorf("user_revoked events %v; want 1", n)
	}
	if n := got[`sessionkit_sessions_revoked_total`]; n != 0 {
		t.Errorf("sessions_revoked_total %v; want 0", n)
	}
}

// TestMetrics_WatchMemstore fills a memstore of one entry: an expired
// record is removed to make room, then a live one is evicted.
func TestMetrics_WatchMemstore(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	ms, err := memstore.New(memstore.Config{Shards: 1, MaxEntries: 1, CleanupInterval: -1, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	if err := sm.WatchMemstore("memory", ms); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	save := func(key string, ttl time.Duration) {
		t.Helper()
		if _, err := ms.Save(ctx, key, store.Record{Data: []byte("data"), Expires: clk.Now().Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	save("a", time.Minute)
	clk.Advance(2 * time.Minute)
	save("b", time.Hour) // a has expired: removed to make room
	save("c", time.Hour) // b is live: evicted
	save("d", 2*time.Hour)

	want := `
# HELP sessionkit_memstore_bytes Sum of len(key)+len(data)+len(user ID) over the records of the in-memory store.
# TYPE sessionkit_memstore_bytes gauge
sessionkit_memstore_bytes{store="memory"} 5
# HELP sessionkit_memstore_entries Records held by the in-memory store, including expired ones not yet removed.
# TYPE sessionkit_memstore_entries gauge
sessionkit_memstore_entries{store="memory"} 1
# HELP sessionkit_memstore_evictions_total Live sessions the in-memory store dropped to make room (lost sessions).
# TYPE sessionkit_memstore_evictions_total counter
sessionkit_memstore_evictions_total{store="memory"} 2
# HELP sessionkit_memstore_expirations_total Expired sessions the in-memory store removed.
# TYPE sessionkit_memstore_expirations_total counter
sessionkit_memstore_expirations_total{store="memory"} 1
`
	names := []string{"sessionkit_memstore_bytes", "sessionkit_memstore_entries",
		"sessionkit_memstore_evictions_total", "sessionkit_memstore_expirations_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if st := ms.Stats(); st.Evictions != 2 || st.Expirations != 1 {
		t.Errorf("Stats %+v; want 2 evictions, 1 expiration", st)
	}

	// The same name twice is an error; another name is another series.
	if err := sm.WatchMemstore("memory", ms); err == nil {
		t.Error("WatchMemstore with a name already watched: nil error; want one")
	}
	if err := sm.WatchMemstore("other", ms); err != nil {
		t.Errorf("WatchMemstore(other): %v", err)
	}
	if err := sm.WatchMemstore("x", nil); err == nil {
		t.Error("WatchMemstore(nil store): nil error; want one")
	}
}

func TestNew_twice(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err == nil || second != nil {
		t.Fatalf("second New on one registry = %v, %v; want nil and an error", second, err)
	}
	if !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		t.Errorf("error %v; want one wrapping prometheus.AlreadyRegisteredError", err)
	}
	// The first still works, and the failed New left nothing behind: a
	// registry with another namespace takes the same collectors' shapes.
	first.SessionEvent(context.Background(), session.Event{Kind: session.EventCreated})
	if got := samples(t, reg)[`sessionkit_session_events_total{event="created"}`]; got != 1 {
		t.Errorf("created = %v; want 1", got)
	}
	if _, err := sessionmetrics.New(reg, sessionmetrics.Options{Namespace: "balancer"}); err != nil {
		t.Errorf("New with another namespace on the same registry: %v", err)
	}
}

func TestNew_rollback(t *testing.T) {
	// A registry that already holds the name of one of the later
	// collectors: New fails and unregisters the ones it had registered.
	checkRollback(t, "sessionkit_breaker_state", func(reg prometheus.Registerer) error {
		_, err := sessionmetrics.New(reg, sessionmetrics.Options{})
		return err
	})
}

// checkRollback registers a gauge named taken, then calls register, which
// must fail on that name and leave nothing else registered.
func checkRollback(t *testing.T, taken string, register func(prometheus.Registerer) error) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: taken, Help: "taken"}))
	if err := register(reg); err == nil {
		t.Fatalf("registering over the taken name %s: nil error; want one", taken)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != taken {
			t.Errorf("after a failed registration the registry holds %s; want nothing of it", mf.GetName())
		}
	}
}

func TestNew_invalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		reg  prometheus.Registerer
		opts sessionmetrics.Options
	}{
		{"nil registerer", nil, sessionmetrics.Options{}},
		{"namespace with dash", prometheus.NewRegistry(), sessionmetrics.Options{Namespace: "session-kit"}},
		{"namespace starting with a digit", prometheus.NewRegistry(), sessionmetrics.Options{Namespace: "9kit"}},
		{"equal buckets", prometheus.NewRegistry(), sessionmetrics.Options{Buckets: []float64{0.1, 0.1}}},
		{"decreasing buckets", prometheus.NewRegistry(), sessionmetrics.Options{Buckets: []float64{1, 0.5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := sessionmetrics.New(tc.reg, tc.opts); err == nil || m != nil {
				t.Errorf("New = %v, %v; want nil and an error", m, err)
			}
		})
	}
}

func TestNew_options(t *testing.T) {
	reg := prometheus.NewRegistry()
	buckets := []float64{0.001, 0.01}
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{Namespace: "app", Buckets: buckets})
	if err != nil {
		t.Fatal(err)
	}
	buckets[0] = 5 // New copied them
	sm.StoreCall(context.Background(), session.StoreCall{Op: store.OpNameLoad, Duration: 5 * time.Millisecond})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "app_") {
			t.Errorf("metric %s; want the app_ prefix", mf.GetName())
		}
		if mf.GetName() != "app_store_call_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "load" {
				continue
			}
			var bs []string
			for _, b := range m.GetHistogram().GetBucket() {
				bs = append(bs, fmt.Sprintf("%g:%d", b.GetUpperBound(), b.GetCumulativeCount()))
			}
			if got := strings.Join(bs, " "); got != "0.001:0 0.01:1" {
				t.Errorf("buckets %s; want 0.001:0 0.01:1", got)
			}
		}
	}
	if d := sessionmetrics.DefaultBuckets(); d[0] != 50e-6 || d[len(d)-1] != 5 {
		t.Errorf("DefaultBuckets %v; want 50µs to 5s", d)
	}
}

// The Observer methods run in every request: they must not allocate.
func TestMetrics_observerAllocs(t *testing.T) {
	sm, err := sessionmetrics.New(prometheus.NewRegistry(), sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := session.StoreCall{Op: store.OpNameSave, Duration: time.Millisecond, Err: store.ErrConflict}
	ev := session.Event{Kind: session.EventUserRevoked, Count: 2}
	if n := testing.AllocsPerRun(100, func() {
		sm.StoreCall(ctx, call)
		sm.SessionEvent(ctx, ev)
	}); n != 0 {
		t.Errorf("StoreCall and SessionEvent allocate %v times; want 0", n)
	}
}

// cacheReporter reports a nearcache.Cache's stats, as a store with a near
// cache does.
type cacheReporter struct{ c *nearcache.Cache }

func (r cacheReporter) NearCacheStats() (nearcache.Stats, bool) {
	if r.c == nil {
		return nearcache.Stats{}, false
	}
	return r.c.Stats(), true
}

// TestMetrics_WatchNearCache exports a near cache's counters after known
// traffic: one miss, an insert, two hits, an invalidation, a refused
// insert, and two measured delays.
func TestMetrics_WatchNearCache(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	c, err := nearcache.New(nearcache.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.WatchNearCache("redis", cacheReporter{c}); err != nil {
		t.Fatal(err)
	}
	if err := sm.WatchNearCache("redis", cacheReporter{c}); err == nil {
		t.Error("a second WatchNearCache of the same name: got nil error")
	}
	rec := store.Record{Data: []byte("data"), Version: 1, Expires: clk.Now().Add(time.Hour), UserID: "u"}
	c.Get("k")
	c.Insert("k", rec, c.Begin("k"))
	c.Get("k")
	c.Get("k")
	tok := c.Begin("j")
	c.Invalidate("j")
	c.Insert("j", rec, tok)
	c.ObserveDelay(time.Millisecond)
	c.ObserveDelay(3 * time.Millisecond)
	l := `{store="redis"}`
	checkSamples(t, samples(t, reg), map[string]float64{
		"sessionkit_nearcache_hits_total" + l:                                            2,
		"sessionkit_nearcache_misses_total" + l:                                          1,
		"sessionkit_nearcache_invalidations_total" + l:                                   1,
		"sessionkit_nearcache_rejected_total" + l:                                        1,
		"sessionkit_nearcache_entries" + l:                                               1,
		"sessionkit_nearcache_bytes" + l:                                                 float64(1 + 1 + 4 + nearcache.EntryOverhead),
		`sessionkit_nearcache_invalidation_delay_seconds{quantile="0.5",store="redis"}`:  0.001,
		`sessionkit_nearcache_invalidation_delay_seconds{quantile="0.99",store="redis"}`: 0.001,
		`sessionkit_nearcache_invalidation_delay_seconds{quantile="1",store="redis"}`:    0.003,
	}, "sessionkit_nearcache_hits_total", "sessionkit_nearcache_flushes_total", "sessionkit_nearcache_evictions_total")
	// A Wrap over a store whose feed was not live reports the reads it
	// sent to the store.
	reg3 := prometheus.NewPedanticRegistry()
	sm3, _ := sessionmetrics.New(reg3, sessionmetrics.Options{})
	if err := sm3.WatchNearCache("nats", statsReporter{nearcache.Stats{Bypassed: 3}}); err != nil {
		t.Fatal(err)
	}
	if got := samples(t, reg3)[`sessionkit_nearcache_bypassed_total{store="nats"}`]; got != 3 {
		t.Errorf("sessionkit_nearcache_bypassed_total = %v; want 3", got)
	}
	// A store without a near cache exports nothing.
	reg2 := prometheus.NewPedanticRegistry()
	sm2, _ := sessionmetrics.New(reg2, sessionmetrics.Options{})
	sm2.WatchNearCache("none", cacheReporter{})
	if n := testutil.CollectAndCount(reg2, "sessionkit_nearcache_hits_total"); n != 0 {
		t.Errorf("%d near cache series for a store without one", n)
	}
}

// statsReporter reports fixed near-cache stats.
type statsReporter struct{ st nearcache.Stats }

func (r statsReporter) NearCacheStats() (nearcache.Stats, bool) { return r.st, true }
