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

// WriteTable writes one row per strategy, aligned, for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\treq/s\tp50 ms\tp95 ms\tp99 ms\terrors\tsessions lost\tupdates lost\tsession B/req\tstore calls/req\t")
	var skipped []Result
	for _, res := range r.Results {
		if res.Skipped != "" {
			// The reason goes below the table: in a cell it would
			// widen the column of every row.
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t\t\t\t\t\t\n", res.Strategy)
			skipped = append(skipped, res)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f\t%.1f\t%d\t%d of %d logins\t%d of %d\t%.0f\t%.2f\t\n",
			res.Strategy, res.RPS, res.P50, res.P95, res.P99, res.Errors,
			res.SessionsLost, res.Logins, res.UpdatesLost, res.UpdatesAcked, res.BytesPerRequest, res.StoreCallsPerRequest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range skipped {
		if _, err := fmt.Fprintf(w, "%s skipped: %s\n", res.Strategy, res.Skipped); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d nodes, %d users, %v per strategy, faults: %s, seed %d, %d CPUs\n",
		r.Nodes, r.Users, r.Duration, strings.Join(r.Faults, "+"), r.Seed, r.CPUs)
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// palette colors the strategies, in order, in every chart.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2"}

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

type page struct {
	R          *Report
	Rows       []row
	Ran        []Result
	Skipped    []Result
	Lines      []lineChart
	BarCharts  []barChart
	Generated  string
	PerRunSecs float64
}

// WriteHTML writes the report as one self-contained HTML page: no
// scripts, fonts or images from elsewhere (it works offline). It holds the
// table, the throughput and p99 latency of every strategy over time with
// the faults marked, and bars of each strategy's losses and costs.
func (r *Report) WriteHTML(w io.Writer) error {
	p := page{R: r, Generated: r.Started.Format(time.RFC1123), PerRunSecs: r.Duration.Seconds()}
	for _, res := range r.Results {
		if res.Skipped != "" {
			p.Skipped = append(p.Skipped, res)
		} else {
			p.Ran = append(p.Ran, res)
		}
	}
	colors := map[string]string{}
	for i, res := range r.Results {
		colors[res.Strategy] = palette[i%len(palette)]
	}
	for _, res := range p.Ran {
		p.Rows = append(p.Rows, row{res, colors[res.Strategy]})
	}
	p.Lines = []lineChart{
		timeChart("throughput", "Requests per second over time", "req/s", p.Ran, colors, r.Duration,
			func(pt Point) float64 { return pt.RPS }),
		timeChart("p99", "p99 latency over time", "ms", p.Ran, colors, r.Duration,
			func(pt Point) float64 { return pt.P99 }),
	}
	for _, b := range []struct {
		id, title string
		v         func(Result) float64
		format    func(Result) string
	}{
		{"sessions-lost", "Sessions lost (logged-in users suddenly without a session)",
			func(x Result) float64 { return float64(x.SessionsLost) },
			func(x Result) string { return fmt.Sprintf("%d of %d logins", x.SessionsLost, x.Logins) }},
		{"updates-lost", "Updates lost (acknowledged cart items later missing)",
			func(x Result) float64 { return float64(x.UpdatesLost) },
			func(x Result) string { return fmt.Sprintf("%d of %d", x.UpdatesLost, x.UpdatesAcked) }},
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
		for _, pt := range res.Timeline {
			top = max(top, v(pt))
		}
	}
	top = niceCeil(top)
	secs := d.Seconds()
	x := func(t float64) float64 { return padL + t/secs*(chartW-padL-padR) }
	y := func(val float64) float64 { return chartH - padB - val/top*(chartH-padT-padB) }
	for _, res := range ran {
		var b strings.Builder
		for _, pt := range res.Timeline {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(pt.At), y(v(pt)))
		}
		c.Series = append(c.Series, series{Name: res.Strategy, Color: colors[res.Strategy], Points: strings.TrimSpace(b.String())})
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

func barsOf(id, title string, ran []Result, colors map[string]string, v func(Result) float64, format func(Result) string) barChart {
	c := barChart{ID: id, Title: title, Height: float64(len(ran))*26 + 8}
	top := 0.0
	for _, res := range ran {
		top = max(top, v(res))
	}
	for i, res := range ran {
		w := 0.0
		if top > 0 {
			w = v(res) / top * 420
		}
		c.Bars = append(c.Bars, bar{Name: res.Strategy, Color: colors[res.Strategy], Y: float64(i)*26 + 4,
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
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 840px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: right; }
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
<p class="note">{{.R.Nodes}} nodes behind sessionkit's balancer, {{.R.Users}} virtual users, {{.PerRunSecs}} s per strategy,
faults: {{range $i, $f := .R.Faults}}{{if $i}} + {{end}}{{$f}}{{end}}; seed {{.R.Seed}}; {{.R.CPUs}} CPUs; {{.Generated}}.
Every count comes from what the virtual users saw.</p>

<table id="results">
<tr><th>strategy</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>errors</th><th>sessions lost</th><th>updates lost</th><th>session B/req</th><th>store calls/req</th></tr>
{{range $r := .Rows}}<tr><td><span class="swatch" style="background:{{$r.Color}}"></span>{{$r.Strategy}}</td>
<td>{{printf "%.0f" $r.RPS}}</td><td>{{printf "%.1f" $r.P50}}</td><td>{{printf "%.1f" $r.P95}}</td><td>{{printf "%.1f" $r.P99}}</td>
<td>{{$r.Errors}}</td><td>{{$r.SessionsLost}} of {{$r.Logins}}</td><td>{{$r.UpdatesLost}} of {{$r.UpdatesAcked}}</td>
<td>{{printf "%.0f" $r.BytesPerRequest}}</td><td>{{printf "%.2f" $r.StoreCallsPerRequest}}</td></tr>
{{end}}{{range .Skipped}}<tr class="skipped"><td>{{.Strategy}}</td><td colspan="9" style="text-align:left">skipped: {{.Skipped}}</td></tr>
{{end}}</table>
<ul class="note">{{range .Ran}}<li><b>{{.Strategy}}</b>: {{.What}}</li>{{end}}</ul>

{{range .Lines}}
<h2>{{.Title}}</h2>
<svg class="chart line-chart" id="chart-{{.ID}}" viewBox="0 0 760 240" width="760" height="240" role="img" aria-label="{{.Title}}">
{{range .YTicks}}<line class="grid" x1="56" x2="744" y1="{{.Pos}}" y2="{{.Pos}}"/><text x="50" y="{{.Pos}}" text-anchor="end" dy="4">{{.Label}}</text>
{{end}}{{range .XTicks}}<text x="{{.Pos}}" y="226" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="56" x2="744" y1="208" y2="208"/>
{{range .Markers}}<line class="fault" x1="{{.X}}" x2="{{.X}}" y1="16" y2="208"/><text class="fault-label" x="{{.X}}" y="12" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Series}}<polyline class="series" data-strategy="{{.Name}}" fill="none" stroke="{{.Color}}" stroke-width="2" points="{{.Points}}"/>
{{end}}</svg>
<p class="note">{{range .Series}}<span class="swatch" style="background:{{.Color}}"></span>{{.Name}} &nbsp; {{end}}({{.Unit}}; dashed lines: faults)</p>
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
