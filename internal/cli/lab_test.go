package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLab_badFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "1"}, "1 nodes: want 2 to 16"},
		{[]string{"--faults", "disk"}, `unknown fault "disk"`},
		{[]string{"--strategies", "memory,memcached"}, `unknown strategy "memcached"`},
		{[]string{"--duration", "soon"}, `invalid value "soon" for flag -duration`},
		{[]string{"--seed", "0"}, `invalid --seed "0"`},
	} {
		code, _, stderr := run(t, nil, append([]string{"lab"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("lab %v: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestLab_jsonAndReport runs a one-second lab of the memory strategy and
// checks the JSON on stdout and the HTML file.
func TestLab_jsonAndReport(t *testing.T) {
	report := filepath.Join(t.TempDir(), "lab.html")
	code, stdout, stderr := run(t, nil, "lab", "--strategies", "memory", "--duration", "1s", "--users", "4",
		"--json", "--report", report)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep struct {
		Results []struct {
			Strategy string `json:"strategy"`
			Requests int    `json:"requests"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	if len(rep.Results) != 1 || rep.Results[0].Strategy != "memory" || rep.Results[0].Requests == 0 {
		t.Errorf("results %+v; want one memory run with requests", rep.Results)
	}
	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), `<svg class="chart line-chart"`) {
		t.Error("the report file has no chart")
	}
}
