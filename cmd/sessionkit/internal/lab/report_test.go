package lab

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// sampleReport is a report of two strategies that ran and one skipped.
func sampleReport() *Report {
	r := &Report{Started: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Nodes: 3, Users: 24,
		Duration: 6 * time.Second, Faults: []string{FaultNode}, Seed: 1, CPUs: 2}
	for i, name := range []string{"memory", "redis"} {
		res := Result{Strategy: name, What: "what " + name, Requests: 1000, Errors: int64(i * 10), RPS: 500,
			P50: 2, P95: 8, P99: 20, Logins: 100, SessionsLost: int64(8 * (1 - i)), UpdatesAcked: 400,
			BytesPerRequest: 65, StoreCallsPerRequest: 1.5 + float64(i),
			Events: []Event{{At: 2.4, Label: "node n3 killed"}, {At: 4.2, Label: "node n3 back"}}}
		for k := range 60 {
			res.Timeline = append(res.Timeline, Point{At: float64(k) * 0.1, RPS: float64(400 + 100*i + k), P50: 2, P99: float64(10 + k%7)})
		}
		r.Results = append(r.Results, res)
	}
	r.Results = append(r.Results, Result{Strategy: "postgres", Skipped: "nothing answers at 127.0.0.1:5432"})
	return r
}

// TestHTMLSelfContained checks that the report loads nothing from
// elsewhere and holds its charts.
func TestHTMLSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, bad := range []string{"<script", "src=", "@import", "url(", "<link"} {
		if strings.Contains(html, bad) {
			t.Errorf("report contains %q; want a page that loads nothing", bad)
		}
	}
	if n := strings.Count(html, `<polyline class="series"`); n != 4 {
		t.Errorf("%d series; want 2 strategies x 2 time charts", n)
	}
	if n := strings.Count(html, `class="fault"`); n != 4 {
		t.Errorf("%d fault markers; want 2 faults x 2 time charts", n)
	}
	if !strings.Contains(html, "skipped: nothing answers at 127.0.0.1:5432") {
		t.Error("the skipped strategy and its reason are missing")
	}
}

// TestHTMLInChromium renders the report in headless Chromium and checks
// that the browser built the charts (its DOM) and drew them (its
// screenshot has the strategies' colors).
func TestHTMLInChromium(t *testing.T) {
	chromium := testenv.Command(t, "chromium")
	if chromium == "" {
		return
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := sampleReport().WriteHTML(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--hide-scrollbars"}
		out, err := exec.CommandContext(ctx, chromium, append(append(base, args...), "file://"+page)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return out
	}
	dom := string(run("--dump-dom"))
	for _, want := range []struct {
		re string
		n  int
	}{
		{`<svg class="chart line-chart"`, 2},
		{`<svg class="chart bar-chart"`, 10},
		{`<polyline class="series"`, 4},
		{`<rect class="bar"`, 20},
	} {
		if got := len(regexp.MustCompile(want.re).FindAllString(dom, -1)); got != want.n {
			t.Errorf("Chromium's DOM has %d of %s; want %d", got, want.re, want.n)
		}
	}
	shot := filepath.Join(dir, "shot.png")
	run("--window-size=900,1900", "--screenshot="+shot)
	pf, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatal(err)
	}
	// Count pixels of the two strategies' colors.
	want := map[[3]uint8]int{{0x1f, 0x77, 0xb4}: 0, {0xd6, 0x27, 0x28}: 0}
	bnd := img.Bounds()
	for y := bnd.Min.Y; y < bnd.Max.Y; y++ {
		for x := bnd.Min.X; x < bnd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			c := [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
			if _, ok := want[c]; ok {
				want[c]++
			}
		}
	}
	for c, n := range want {
		if n < 500 {
			t.Errorf("screenshot has %d pixels of %02x%02x%02x; want the charts drawn in it", n, c[0], c[1], c[2])
		}
	}
}
