package lab

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes one row per strategy (and front), aligned, for a
// terminal.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\treq/s\tp50 ms\tp99 ms\terrors\tusers lost\tsessions lost\tupdates lost\tstale reads\tlogout lag ms p50/p99/max\trecovery s first/90%\tB/req\tcalls/req\t")
	var skipped []Result
	for _, res := range r.Results {
		name := res.rowName(r)
		if res.Skipped != "" {
			// The reason goes below the table: in a cell it would
			// widen the column of every row.
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t\t\t\t\t\t\t\t\t\n", name)
			skipped = append(skipped, res)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f\t%d\t%s\t%d of %d\t%d of %d\t%s\t%s\t%s\t%.0f\t%.2f\t\n",
			name, res.RPS, res.P50, res.P99, res.Errors, res.usersLost(),
			res.SessionsLost, res.Logins, res.UpdatesLost, res.UpdatesAcked, res.staleReads(), res.LogoutLag,
			res.recovery(), res.BytesPerRequest, res.StoreCallsPerRequest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range skipped {
		if _, err := fmt.Fprintf(w, "%s skipped: %s\n", res.rowName(r), res.Skipped); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%s\n", r.summary())
	return err
}

// summary is the report's closing line.
func (r *Report) summary() string {
	d := fmt.Sprintf("%v per strategy", r.Duration)
	if r.Settle > 0 {
		d = fmt.Sprintf("%v per strategy (olric, nats: %v)", r.Duration, r.Duration+r.Settle)
	}
	s := fmt.Sprintf("%d serve processes behind %s, %d users, %s, faults: %s, seed %d, %d CPUs",
		r.Nodes, strings.Join(r.Fronts, ", "), r.Users, d, strings.Join(r.Faults, "+"), r.Seed, r.CPUs)
	if r.Elapsed > 0 {
		s += fmt.Sprintf(", %.0fs in all", r.Elapsed.Seconds())
	}
	return s
}

// rowName is the result's name in a table: its strategy, and its front
// when the report has several.
func (res Result) rowName(r *Report) string {
	if len(r.Fronts) > 1 {
		return res.Strategy + " via " + res.Front
	}
	return res.Strategy
}

func (res Result) usersLost() string {
	if res.Users == 0 {
		return "-"
	}
	return fmt.Sprintf("%d of %d (%.0f%%)", res.UsersLost, res.Users, 100*float64(res.UsersLost)/float64(res.Users))
}

func (res Result) staleReads() string {
	if res.StaleProbes == 0 {
		return "-"
	}
	return fmt.Sprintf("%d of %d", res.StaleReads, res.StaleProbes)
}

// String formats the lag as p50/p99/max in milliseconds, with the logouts
// not honoured within 5 s.
func (l Lag) String() string {
	if l.Samples == 0 && l.Late == 0 {
		return "-"
	}
	s := "-"
	if l.Samples > 0 {
		s = fmt.Sprintf("%s/%s/%s", msText(l.P50), msText(l.P99), msText(l.Max))
	}
	if l.Late > 0 {
		s += fmt.Sprintf(" +%d over 5s", l.Late)
	}
	return s
}

func msText(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// recovery is the recovery after the first event, first success / back
// to 90%, in seconds.
func (res Result) recovery() string {
	if len(res.Events) == 0 {
		return "-"
	}
	e := res.Events[0]
	return secText(e.FirstOK) + "/" + secText(e.Back90)
}

func secText(v *float64) string {
	if v == nil {
		return "never"
	}
	return fmt.Sprintf("%.2f", *v)
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// palette colors the strategies, in order, in every chart.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2", "#bcbd22", "#7f7f7f"}

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 760, 240
	padL, padR     = 56, 16
	padT, padB     = 16, 32
)

type series struct {
	Name, Color string
	Points      string // SVG polyline points
}

type marker struct {
	X     float64
	Label string
}

type tick struct {
	Pos   float64
	Label string
}

type lineChart struct {
	ID, Title, Unit string
	Series          []series
	Markers         []marker
	XTicks, YTicks  []tick
}

type bar struct {
	Name, Color string
	Y, W        float64
	Label       string
}

type barChart struct {
	ID, Title string
	Bars      []bar
	Height    float64
}

// row is a result with its color.
type row struct {
	Result
	Color string
}

// The cells of a row that the template cannot format itself.
func (r row) UsersLostText() string { return r.usersLost() }
func (r row) StaleText() string     { return r.staleReads() }
func (r row) RecoveryText() string  { return r.recovery() }

type page struct {
	R          *Report
	Rows       []row
	Ran        []Result
	Skipped    []Result
	Lines      []lineChart
	BarCharts  []barChart
	Generated  string
	PerRunSecs float64
	Summary    string
}

// WriteHTML writes the report as one self-contained HTML page: no
// scripts, fonts or images from elsewhere (it works offline). It holds the
// table, the throughput and p99 latency of every strategy over time with
// the faults marked, and bars of each strategy's losses and costs.
func (r *Report) WriteHTML(w io.Writer) error {
	p := page{R: r, Generated: r.Started.Format(time.RFC1123), PerRunSecs: r.Duration.Seconds(), Summary: r.summary()}
	for _, res := range r.Results {
		if res.Skipped != "" {
			p.Skipped = append(p.Skipped, res)
		} else {
			p.Ran = append(p.Ran, res)
		}
	}
	colors := map[string]string{}
	for i, res := range r.Results {
		colors[res.rowName(r)] = palette[i%len(palette)]
	}
	for i := range r.Results {
		r.Results[i].Name = r.Results[i].rowName(r)
	}
	p.Ran, p.Skipped = p.Ran[:0], p.Skipped[:0]
	for _, res := range r.Results {
		if res.Skipped != "" {
			p.Skipped = append(p.Skipped, res)
		} else {
			p.Ran = append(p.Ran, res)
		}
	}
	for _, res := range p.Ran {
		p.Rows = append(p.Rows, row{res, colors[res.Name]})
	}
	longest := r.Duration
	for _, res := range p.Ran {
		longest = max(longest, time.Duration(res.Seconds*float64(time.Second)))
	}
	p.Lines = []lineChart{
		timeChart("throughput", "Requests per second over time", "req/s", p.Ran, colors, longest,
			func(pt Point) float64 { return pt.RPS }),
		timeChart("p99", "p99 latency over time", "ms", p.Ran, colors, longest,
			func(pt Point) float64 { return pt.P99 }),
	}
	for _, b := range []struct {
		id, title string
		v         func(Result) float64
		format    func(Result) string
	}{
		{"users-lost", "Users who lost a session (share of the users)",
			func(x Result) float64 { return float64(x.UsersLost) / float64(max(1, x.Users)) },
			func(x Result) string { return x.usersLost() }},
		{"sessions-lost", "Sessions lost (logged-in users suddenly without a session)",
			func(x Result) float64 { return float64(x.SessionsLost) },
			func(x Result) string { return fmt.Sprintf("%d of %d logins", x.SessionsLost, x.Logins) }},
		{"updates-lost", "Updates lost (acknowledged cart items later missing)",
			func(x Result) float64 { return float64(x.UpdatesLost) },
			func(x Result) string { return fmt.Sprintf("%d of %d", x.UpdatesLost, x.UpdatesAcked) }},
		{"stale-reads", "Stale reads (a read at another node lacking an acknowledged add)",
			func(x Result) float64 { return float64(x.StaleReads) },
			func(x Result) string { return x.staleReads() }},
		{"logout-lag", "Logout lag, p99 (from a logout acknowledged to 401 on every node)",
			func(x Result) float64 { return x.LogoutLag.P99 },
			func(x Result) string { return x.LogoutLag.String() + " ms" }},
		{"recovery", "Recovery after the first fault (until the throughput is back to 90% of its median)",
			func(x Result) float64 {
				if len(x.Events) == 0 || x.Events[0].Back90 == nil {
					return x.Seconds
				}
				return *x.Events[0].Back90
			},
			func(x Result) string { return "first success / 90%: " + x.recovery() + " s" }},
		{"errors", "Errors (failed requests)",
			func(x Result) float64 { return float64(x.Errors) },
			func(x Result) string { return fmt.Sprintf("%d of %d", x.Errors, x.Requests) }},
		{"bytes", "Session bytes on the wire per request (Cookie + Set-Cookie)",
			func(x Result) float64 { return x.BytesPerRequest },
			func(x Result) string { return fmt.Sprintf("%.0f B", x.BytesPerRequest) }},
		{"store-calls", "Store calls per request",
			func(x Result) float64 { return x.StoreCallsPerRequest },
			func(x Result) string { return fmt.Sprintf("%.2f", x.StoreCallsPerRequest) }},
		{"rps", "Requests per second (whole run)",
			func(x Result) float64 { return x.RPS },
			func(x Result) string { return fmt.Sprintf("%.0f", x.RPS) }},
	} {
		p.BarCharts = append(p.BarCharts, barsOf(b.id, b.title, p.Ran, colors, b.v, b.format))
	}
	return reportTemplate.Execute(w, p)
}

func timeChart(id, title, unit string, ran []Result, colors map[string]string, d time.Duration,
	v func(Point) float64) lineChart {
	c := lineChart{ID: id, Title: title, Unit: unit}
	top := 0.0
	for _, res := range ran {
		for _, pt := range smooth(res.Timeline, v) {
			top = max(top, pt[1])
		}
	}
	top = niceCeil(top)
	secs := d.Seconds()
	x := func(t float64) float64 { return padL + t/secs*(chartW-padL-padR) }
	y := func(val float64) float64 { return chartH - padB - val/top*(chartH-padT-padB) }
	for _, res := range ran {
		var b strings.Builder
		for _, pt := range smooth(res.Timeline, v) {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(pt[0]), y(pt[1]))
		}
		c.Series = append(c.Series, series{Name: res.Name, Color: colors[res.Name], Points: strings.TrimSpace(b.String())})
	}
	// Every run has the same schedule: mark each fault once, where it
	// first happened.
	seen := map[string]bool{}
	for _, res := range ran {
		for _, e := range res.Events {
			if !seen[e.Label] {
				seen[e.Label] = true
				c.Markers = append(c.Markers, marker{X: x(e.At), Label: strings.TrimPrefix(e.Label, "node ")})
			}
		}
	}
	for i := 0; i <= 5; i++ {
		t := secs * float64(i) / 5
		c.XTicks = append(c.XTicks, tick{Pos: x(t), Label: fmt.Sprintf("%.1fs", t)})
		val := top * float64(i) / 4
		if i <= 4 {
			c.YTicks = append(c.YTicks, tick{Pos: y(val), Label: fmt.Sprintf("%.0f", val)})
		}
	}
	return c
}

// smooth returns the time line's values of v averaged over half a second
// (the slices are 100 ms): a point per half second, at its start.
func smooth(tl []Point, v func(Point) float64) [][2]float64 {
	if len(tl) < 2 {
		var out [][2]float64
		for _, p := range tl {
			out = append(out, [2]float64{p.At, v(p)})
		}
		return out
	}
	k := max(1, int(0.5/(tl[1].At-tl[0].At)+0.5))
	var out [][2]float64
	for i := 0; i < len(tl); i += k {
		group := tl[i:min(i+k, len(tl))]
		var sum float64
		for _, p := range group {
			sum += v(p)
		}
		out = append(out, [2]float64{group[0].At, sum / float64(len(group))})
	}
	return out
}

func barsOf(id, title string, ran []Result, colors map[string]string, v func(Result) float64, format func(Result) string) barChart {
	c := barChart{ID: id, Title: title, Height: float64(len(ran))*26 + 8}
	if len(ran) == 0 {
		return c
	}
	top := 0.0
	for _, res := range ran {
		top = max(top, v(res))
	}
	for i, res := range ran {
		w := 0.0
		if top > 0 {
			w = v(res) / top * 420
		}
		c.Bars = append(c.Bars, bar{Name: res.Name, Color: colors[res.Name], Y: float64(i)*26 + 4,
			W: math.Max(w, 1), Label: format(res)})
	}
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (and 0 to 1).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

var reportTemplate = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sessionkit lab report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 1240px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 6px; white-space: nowrap; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
.grid { stroke: #eee; } .axis { stroke: #999; }
.fault { stroke: #555; stroke-dasharray: 4 3; }
.note { color: #666; }
</style>
</head>
<body>
<h1>sessionkit lab</h1>
<p class="note">{{.Summary}}; {{.Generated}}.
Each node is a <code>sessionkit serve</code> process; the node fault is a SIGKILL.
Every count comes from what the virtual users saw.</p>

<table id="results">
<tr><th>strategy</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>errors</th><th>users lost</th><th>sessions lost</th><th>updates lost</th><th>stale reads</th><th>logout lag ms<br>p50/p99/max</th><th>recovery s<br>first/90%</th><th>session B/req</th><th>store calls/req</th></tr>
{{range $r := .Rows}}<tr><td><span class="swatch" style="background:{{$r.Color}}"></span>{{$r.Name}}</td>
<td>{{printf "%.0f" $r.RPS}}</td><td>{{printf "%.1f" $r.P50}}</td><td>{{printf "%.1f" $r.P99}}</td>
<td>{{$r.Errors}}</td><td>{{$r.UsersLostText}}</td><td>{{$r.SessionsLost}} of {{$r.Logins}}</td><td>{{$r.UpdatesLost}} of {{$r.UpdatesAcked}}</td>
<td>{{$r.StaleText}}</td><td>{{$r.LogoutLag}}</td><td>{{$r.RecoveryText}}</td>
<td>{{printf "%.0f" $r.BytesPerRequest}}</td><td>{{printf "%.2f" $r.StoreCallsPerRequest}}</td></tr>
{{end}}{{range .Skipped}}<tr class="skipped"><td>{{.Name}}</td><td colspan="12" style="text-align:left">skipped: {{.Skipped}}</td></tr>
{{end}}</table>
<ul class="note">{{range .Ran}}<li><b>{{.Name}}</b>: {{.What}}{{range .Flags}} <code>{{.}}</code>{{end}}{{with .Events}}; {{range $i, $e := .}}{{if $i}}, {{end}}{{$e.Label}} at {{printf "%.1f" $e.At}} s{{end}}{{end}}</li>{{end}}</ul>
<p class="note">Users lost: users who lost at least one session. Stale reads: a cart read directly at another node
right after an add was acknowledged, lacking it. Logout lag: from a logout acknowledged to 401 on every node for the
old cookie. Recovery: after the first fault, the first request that succeeded, and the successes per second (over
1 s) back to 90% of their median rate after dipping under it within 2 s of the fault.</p>

{{range .Lines}}
<h2>{{.Title}}</h2>
<svg class="chart line-chart" id="chart-{{.ID}}" viewBox="0 0 760 240" width="760" height="240" role="img" aria-label="{{.Title}}">
{{range .YTicks}}<line class="grid" x1="56" x2="744" y1="{{.Pos}}" y2="{{.Pos}}"/><text x="50" y="{{.Pos}}" text-anchor="end" dy="4">{{.Label}}</text>
{{end}}{{range .XTicks}}<text x="{{.Pos}}" y="226" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="56" x2="744" y1="208" y2="208"/>
{{range .Markers}}<line class="fault" x1="{{.X}}" x2="{{.X}}" y1="16" y2="208"/><text class="fault-label" x="{{.X}}" y="12" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Series}}<polyline class="series" data-strategy="{{.Name}}" fill="none" stroke="{{.Color}}" stroke-width="2" points="{{.Points}}"/>
{{end}}</svg>
<p class="note">{{range .Series}}<span class="swatch" style="background:{{.Color}}"></span>{{.Name}} &nbsp; {{end}}({{.Unit}}, averaged over 0.5 s; dashed lines: faults)</p>
{{end}}

{{range .BarCharts}}
<h2>{{.Title}}</h2>
<svg class="chart bar-chart" id="chart-{{.ID}}" viewBox="0 0 760 {{.Height}}" width="760" height="{{.Height}}" role="img" aria-label="{{.Title}}">
{{range .Bars}}<text x="110" y="{{.Y}}" dy="14" text-anchor="end">{{.Name}}</text><rect class="bar" data-strategy="{{.Name}}" x="118" y="{{.Y}}" width="{{.W}}" height="18" fill="{{.Color}}"/><text x="{{.W}}" y="{{.Y}}" dx="126" dy="14">{{.Label}}</text>
{{end}}</svg>
{{end}}
</body>
</html>
`))
