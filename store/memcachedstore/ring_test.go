package memcachedstore

import (
	"fmt"
	"testing"
)

// placement returns the server name each of n keys goes to with names.
func placement(t *testing.T, names []string, n int) map[string]string {
	t.Helper()
	s := newServers(names)
	m := make(map[string]string, n)
	for i := range n {
		k := fmt.Sprintf("sk:s:%d-key", i)
		m[k] = s.names[s.pick(k)]
	}
	return m
}

// TestServers_removeMovesOnlyItsShare checks rendezvous hashing's promise:
// losing one of N servers moves only the keys it held, and the keys spread
// evenly (within 10% of 1/N) before and after.
func TestServers_removeMovesOnlyItsShare(t *testing.T) {
	const n = 30000
	for _, tc := range []struct {
		name   string
		before []string
		after  []string
	}{
		{"ThreeToTwo", []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"}, []string{"10.0.0.1:11211", "10.0.0.3:11211"}},
		{"FiveToFour", []string{"a:1", "b:1", "c:1", "d:1", "e:1"}, []string{"a:1", "b:1", "d:1", "e:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, after := placement(t, tc.before, n), placement(t, tc.after, n)
			checkEven(t, before, tc.before, n)
			checkEven(t, after, tc.after, n)
			moved := 0
			for k, srv := range before {
				if after[k] != srv {
					moved++
					if contains(tc.after, srv) {
						t.Fatalf("key %q moved from %s, which is still there, to %s", k, srv, after[k])
					}
				}
			}
			want := n / len(tc.before)
			if moved < want*9/10 || moved > want*11/10 {
				t.Errorf("moved %d of %d keys; want about %d (the removed server's share)", moved, n, want)
			}
		})
	}
}

// TestServers_addMovesOnlyItsShare checks that adding a server moves only
// the keys it now wins, about 1/(N+1) of them, and all to it.
func TestServers_addMovesOnlyItsShare(t *testing.T) {
	const n = 30000
	three := []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"}
	four := append([]string{"10.0.0.4:11211"}, three...) // order does not matter
	before, after := placement(t, three, n), placement(t, four, n)
	moved := 0
	for k, srv := range before {
		if after[k] != srv {
			moved++
			if after[k] != "10.0.0.4:11211" {
				t.Fatalf("key %q moved from %s to %s; want moves only to the new server", k, srv, after[k])
			}
		}
	}
	if want := n / 4; moved < want*9/10 || moved > want*11/10 {
		t.Errorf("moved %d of %d keys; want about %d", moved, n, want)
	}
}

// TestServers_orderDoesNotMatter checks that clients listing the same
// servers in another order agree on every key.
func TestServers_orderDoesNotMatter(t *testing.T) {
	a := placement(t, []string{"x:1", "y:1", "z:1"}, 5000)
	b := placement(t, []string{"z:1", "x:1", "y:1"}, 5000)
	for k := range a {
		if a[k] != b[k] {
			t.Fatalf("key %q: %s with one order, %s with another", k, a[k], b[k])
		}
	}
}

func checkEven(t *testing.T, m map[string]string, names []string, n int) {
	t.Helper()
	count := make(map[string]int)
	for _, s := range m {
		count[s]++
	}
	want := n / len(names)
	for _, s := range names {
		if c := count[s]; c < want*9/10 || c > want*11/10 {
			t.Errorf("server %s holds %d of %d keys; want about %d", s, c, n, want)
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
