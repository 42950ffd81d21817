package natsstore

import (
	"testing"
	"time"
)

func TestPickDead(t *testing.T) {
	const after = 10 * time.Second
	m := func(name string, silent time.Duration) member {
		return member{id: "id-" + name, name: name, silent: silent}
	}
	for _, c := range []struct {
		name    string
		members []member // the leader's peers; the leader is live
		size    int
		want    string // "" for none
	}{
		{"all heard from", []member{m("n2", time.Second), m("n3", 0)}, 3, ""},
		{"one dead, not replaced: the cluster is short, keep it", []member{m("n2", time.Minute), m("n3", 0)}, 3, ""},
		{"one dead and replaced", []member{m("n2", time.Minute), m("n3", 0), m("n4", 0)}, 3, "n2"},
		{"replaced, not silent long enough", []member{m("n2", after-time.Millisecond), m("n3", 0), m("n4", 0)}, 3, ""},
		{"replaced, silent exactly the limit", []member{m("n2", after), m("n3", 0), m("n4", 0)}, 3, "n2"},
		{"two dead, one replacement: too few live", []member{m("n2", time.Minute), m("n3", time.Minute), m("n4", 0)}, 3, ""},
		{"two dead, two replacements: the longest silent first", []member{m("n2", time.Minute), m("n3", 2*time.Minute), m("n4", 0), m("n5", 0)}, 3, "n3"},
		{"a cluster of one peer more than its size", []member{m("n2", 0), m("n3", 0), m("n4", 0)}, 3, ""},
		{"five, one dead and replaced", []member{m("n2", 0), m("n3", 0), m("n4", time.Hour), m("n5", 0), m("n6", 0)}, 5, "n4"},
		{"five, one dead, not replaced", []member{m("n2", 0), m("n3", 0), m("n4", time.Hour), m("n5", 0)}, 5, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := pickDead(c.members, c.size, after)
			switch {
			case c.want == "" && ok:
				t.Errorf("pickDead removes %s; want none", got.name)
			case c.want != "" && !ok:
				t.Errorf("pickDead removes none; want %s", c.want)
			case c.want != "" && got.name != c.want:
				t.Errorf("pickDead removes %s; want %s", got.name, c.want)
			}
		})
	}
}

func TestClusterSize(t *testing.T) {
	for _, c := range []struct {
		cfg  NodeConfig
		want int
	}{
		{NodeConfig{ClusterAddr: "a:1"}, 1},
		{NodeConfig{ClusterAddr: "a:1", Peers: []string{"b:1", "c:1"}}, 3},
		{NodeConfig{ClusterAddr: "a:1", Peers: []string{"b:1", "a:1", "c:1", "b:1"}}, 3},
	} {
		if got := clusterSize(c.cfg); got != c.want {
			t.Errorf("clusterSize(%+v) = %d; want %d", c.cfg, got, c.want)
		}
	}
}
