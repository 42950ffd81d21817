package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

func TestLab_badFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "1"}, `invalid --nodes "1": want 2 to 16`},
		{[]string{"--nodes", "0"}, `invalid --nodes "0": want 2 to 16`},
		{[]string{"--users", "0"}, `invalid --users "0": want 1 to 10000`},
		{[]string{"--duration", "0s"}, `invalid --duration "0s": want 1s to 1h`},
		{[]string{"--faults", "disk"}, `unknown fault "disk"`},
		{[]string{"--faults", "none,node"}, "none excludes the others"},
		{[]string{"--faults", "node,"}, `invalid --faults "node,"`},
		{[]string{"--strategies", "memory,couchbase"}, `unknown strategy "couchbase"`},
		{[]string{"--strategies", "memory,,token"}, `invalid --strategies "memory,,token"`},
		{[]string{"--strategies", "memory,token,memory"}, `strategy "memory" given twice`},
		{[]string{"--duration", "soon"}, `invalid value "soon" for flag -duration`},
		{[]string{"--seed", "0"}, `invalid --seed "0"`},
		{[]string{"--front", "traefik"}, `unknown front "traefik"`},
		{[]string{"--settle", "-1s"}, `invalid --settle "-1s"`},
		{[]string{"--strategies", "redis+Near"}, `"Near" is not a flag name`},
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
	code, stdout, stderr := run(t, nil, "lab", "--binary", testenv.Sessionkit(t), "--strategies", "memory",
		"--duration", "1s", "--users", "4", "--json", "--report", report)
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
	if files, _ := os.ReadDir(filepath.Dir(report)); len(files) != 1 {
		t.Errorf("the report's directory holds %d files; want only the report", len(files))
	}
}

// A report that cannot be written fails before the runs (the table is
// not printed).
func TestLab_reportNotWritable(t *testing.T) {
	code, stdout, stderr := run(t, nil, "lab", "--strategies", "memory", "--duration", "1s",
		"--report", filepath.Join(t.TempDir(), "missing", "lab.html"))
	if code != 1 || stdout != "" || !strings.Contains(stderr, "--report") || strings.Contains(stderr, "memory") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1, no table and one --report error", code, stdout, stderr)
	}
}
