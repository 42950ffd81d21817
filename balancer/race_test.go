package balancer

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestBalancer_concurrentChanges runs traffic while nodes are added,
// removed, drained, activated and checked, for the race detector; every
// request must still be answered by a node that existed.
func TestBalancer_concurrentChanges(t *testing.T) {
	b, _, clock, _ := newTestBalancer(t, three, nil)
	extra := startNode(t, "n4")
	ids := []string{newID(t, "n1"), newID(t, "n2"), newID(t, "n3"), newID(t, "n4")}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w := do(b, "GET", "/cart", "", &http.Cookie{Name: "__Host-session", Value: ids[(g+i)%len(ids)]})
				if w.Code != http.StatusOK {
					errs <- fmt.Errorf("status %d", w.Code)
					return
				}
				switch n := w.Header().Get("X-Node"); n {
				case "n1", "n2", "n3", "n4":
				default:
					errs <- fmt.Errorf("answered by %q", n)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			switch i % 6 {
			case 0:
				b.AddNode(extra.backend())
			case 1:
				b.Drain("n2", clock.Now().Add(time.Minute))
			case 2:
				b.CheckHealth(t.Context())
			case 3:
				b.Activate("n2")
			case 4:
				b.Nodes()
			case 5:
				b.RemoveNode("n4")
			}
		}
		close(stop)
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBalancer_rehomeAvoidsDraining checks that the users of a dead node
// are never re-homed onto a draining one.
func TestBalancer_rehomeAvoidsDraining(t *testing.T) {
	b, nodes, clock, _ := newTestBalancer(t, three, nil)
	if err := b.Drain("n3", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	nodes["n1"].stop()
	b.CheckHealth(t.Context())
	for range 100 {
		if got := nodeOf(t, b, newID(t, "n1")); got != "n2" {
			t.Fatalf("a user of the dead n1 went to %s; want n2, the only node taking new sessions", got)
		}
	}
}
