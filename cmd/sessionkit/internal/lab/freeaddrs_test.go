package lab

import "testing"

// TestFreeAddrs_neverTwice: addresses from separate calls never repeat,
// although each call closes its listeners before returning (the kernel
// may then hand the same port out again).
func TestFreeAddrs_neverTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		addrs, err := freeAddrs(3)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) != 3 {
			t.Fatalf("got %d addresses, want 3", len(addrs))
		}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("%s handed out twice", a)
			}
			seen[a] = true
		}
	}
}
