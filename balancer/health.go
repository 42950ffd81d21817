package balancer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

func (b *Balancer) healthLoop() {
	defer close(b.done)
	t := time.NewTicker(b.cfg.Health.Interval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-b.stop; cancel() }()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.CheckHealth(ctx)
		}
	}
}

// CheckHealth runs one round of active health checks on every node, in
// parallel, and returns when they are done. The background checks call it
// every Health.Interval; tests and callers with a negative Interval may
// call it themselves. It is safe for concurrent use.
func (b *Balancer) CheckHealth(ctx context.Context) {
	var wg sync.WaitGroup
	for _, n := range b.set.Load().list {
		wg.Go(func() { b.check(ctx, n) })
	}
	wg.Wait()
}

func (b *Balancer) check(ctx context.Context, n *node) {
	err := b.probe(ctx, n)
	if ctx.Err() != nil {
		return // stopping: not the node's fault
	}
	h := b.cfg.Health
	n.checkMu.Lock()
	defer n.checkMu.Unlock()
	if err != nil {
		n.passes = 0
		n.failures++
		n.lastCheck = err.Error()
		if n.up.Load() && n.failures >= h.Fall {
			n.up.Store(false)
			b.cfg.Logger.Warn("balancer: node down", "node", n.name, "failed_checks", n.failures, "err", err)
		}
		return
	}
	n.failures = 0
	n.passes++
	n.lastCheck = "ok"
	if n.ejectedUntil.Load() != 0 {
		n.ejectedUntil.Store(0) // it answers again: end a passive ejection early
	}
	if !n.up.Load() && n.passes >= h.Rise {
		n.up.Store(true)
		b.cfg.Logger.Info("balancer: node up", "node", n.name, "passed_checks", n.passes)
	}
}

func (b *Balancer) probe(ctx context.Context, n *node) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Health.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url.JoinPath(b.cfg.Health.Path).String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "sessionkit-balancer-health")
	resp, err := b.cfg.Transport.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // only to reuse the connection
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("health check answered %s", resp.Status)
	}
	return nil
}
