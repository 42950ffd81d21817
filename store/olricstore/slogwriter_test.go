package olricstore

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestSlogWriter_replicaWarning checks that Olric's "Desired replica
// count" warning, which its coordinator logs on every routing-table push,
// reaches Warn once until it changes, while other warnings always do.
func TestSlogWriter_replicaWarning(t *testing.T) {
	var buf bytes.Buffer
	w := &slogWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, line := range []string{
		"[WARN] Desired replica count is 2 and the cluster has 1 members currently\n",
		"[WARN] Desired replica count is 2 and the cluster has 1 members currently\n",
		"[WARN] something else\n",
		"[WARN] something else\n",
		"[WARN] Desired replica count is 3 and the cluster has 2 members currently\n",
		"[WARN] Desired replica count is 3 and the cluster has 2 members currently\n",
	} {
		w.Write([]byte(line))
	}
	got := buf.String()
	for _, c := range []struct {
		text string
		n    int
	}{{"cluster has 1 members", 1}, {"something else", 2}, {"cluster has 2 members", 1}} {
		if n := strings.Count(got, c.text); n != c.n {
			t.Errorf("%q logged at Warn %d times; want %d. Log:\n%s", c.text, n, c.n, got)
		}
	}
}
