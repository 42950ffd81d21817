package balancer

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestFastServer_reusesLastConnection checks the order in which the fast
// engine reuses its idle connections to a node: the one used last first,
// so that after a burst the requests keep to one connection and the
// others can time out, where FIFO would spread them over every
// connection the burst opened.
func TestFastServer_reusesLastConnection(t *testing.T) {
	if testEngine != "fast" {
		t.Skip("the fast engine's pool")
	}
	const burst = 3
	var (
		mu      sync.Mutex
		ports   []string
		arrived = make(chan struct{}, burst)
		release = make(chan struct{})
	)
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/burst" {
			arrived <- struct{}{}
			<-release
		}
		mu.Lock()
		ports = append(ports, r.RemoteAddr)
		mu.Unlock()
	}))
	defer node.Close()
	b, err := New(Config{Backends: []Backend{{Name: "n1", URL: node.URL}}, Health: HealthCheck{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	front := fastFront(t, b)
	get := func(path string) {
		resp, err := frontClient.Get(front + path)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}

	// A burst opens burst connections to the node, which all go back to
	// the pool.
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() { get("/burst") })
	}
	for range burst {
		<-arrived
	}
	close(release)
	wg.Wait()
	mu.Lock()
	ports = nil
	mu.Unlock()

	for range 6 {
		get("/next")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range ports[1:] {
		if p != ports[0] {
			t.Fatalf("sequential requests after a burst went on several connections: %v", ports)
		}
	}
}
