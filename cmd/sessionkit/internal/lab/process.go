package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
)

// The nodes' session settings: the run lasts seconds.
const (
	idleTimeout = 5 * time.Minute
	lifetime    = 10 * time.Minute
)

// startTimeout bounds the start of one node process (an embedded
// cluster's first node waits for its peers) or of the front.
const startTimeout = 60 * time.Second

// scrapeEvery is how often the lab reads each node's /metrics for its
// store calls: a node killed with SIGKILL takes the calls since its last
// scrape with it.
const scrapeEvery = 250 * time.Millisecond

// procTopology is a front (a balancer) in front of reference-app nodes
// that are `sessionkit serve` child processes of one row's strategy.
type procTopology struct {
	bin   string
	dir   string // the row's scratch directory: logs, configurations, data
	row   Row
	strat strategy.Strategy
	plan  *strategy.Plan

	nodes []*procNode
	front *frontProc
	url   string // the front's base URL

	nextName int // the number of the next replacement's name

	// deadCalls are the store calls counted by node processes that
	// ended, as of their last scrape.
	deadCalls  atomic.Int64
	stopScrape func()
}

// procNode is one node's slot: its address is fixed for the run, so that
// the front finds a restarted or replaced node where it was.
type procNode struct {
	slot int
	addr string

	mu    sync.Mutex
	name  string
	proc  *process
	calls int64 // store calls as of the current process's last scrape
}

// process is a child process whose output goes to a log file.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once it has exited and been reaped
}

// startProcess starts bin with args, its stdout and stderr appended to
// the file log, in the lab's process group (a Ctrl-C in a terminal
// reaches it too) and, on Linux, killed if the lab dies.
func startProcess(bin string, args []string, log string) (*process, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "--- %s %s\n", filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = f, f
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &process{cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the lab's environment without sessionkit's variables: a
// node's settings are its flags, not what the user's shell exports.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIONKIT_") {
			env = append(env, kv)
		}
	}
	return env
}

// kill ends the process with SIGKILL and waits until it is reaped.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes a process that exited: its status and the tail of
// its log. A serve that refused its flags (status 2) is a skip: the row
// cannot run, and its one line says why.
func (p *process) failure(what string) error {
	tail := logTail(p.log, 12)
	if p.cmd.ProcessState != nil && p.cmd.ProcessState.ExitCode() == 2 {
		last := tail
		if i := strings.LastIndexByte(strings.TrimSpace(tail), '\n'); i >= 0 {
			last = strings.TrimSpace(tail)[i+1:]
		}
		return fmt.Errorf("%w: %s", strategy.ErrSkip, strings.TrimSpace(strings.TrimPrefix(last, "sessionkit serve: ")))
	}
	return fmt.Errorf("%s exited (%v); the end of its log, %s:\n%s", what, p.cmd.ProcessState, p.log, tail)
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var probeClient = &http.Client{Timeout: time.Second}

// waitReady polls url until it answers 200, p exits, or the timeout.
func waitReady(ctx context.Context, p *process, url, what string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := probeClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return p.failure(what)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v; the end of its log, %s:\n%s", what, startTimeout, p.log, logTail(p.log, 12))
		}
		pause(ctx, 50*time.Millisecond)
	}
}

// startProcTopology starts the row's nodes, all at once (the first node
// of an embedded cluster waits for the others), then the front.
func startProcTopology(ctx context.Context, cfg Config, row Row, front string, s strategy.Strategy,
	plan *strategy.Plan, dir string) (*procTopology, error) {
	t := &procTopology{bin: cfg.Binary, dir: dir, row: row, strat: s, plan: plan, nextName: cfg.Nodes + 1}
	addrs, err := freeAddrs(cfg.Nodes)
	if err != nil {
		return nil, err
	}
	for i, a := range addrs {
		t.nodes = append(t.nodes, &procNode{slot: i, addr: a, name: fmt.Sprintf("n%d", i+1)})
	}
	for i := range t.nodes {
		if err := t.spawn(i, strategy.First); err != nil {
			t.close()
			return nil, err
		}
	}
	errs := make([]error, len(t.nodes))
	var wg sync.WaitGroup
	for i := range t.nodes {
		wg.Go(func() { errs[i] = t.ready(ctx, i) })
	}
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, strategy.ErrSkip) { // serve refused its flags: once is enough
			t.close()
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.close()
		return nil, err
	}
	if t.front, err = startFront(ctx, cfg, front, s.Shared, t.nodes, dir); err != nil {
		t.close()
		return nil, err
	}
	t.url = t.front.url
	scrapeCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); t.scrapeLoop(scrapeCtx) }()
	t.stopScrape = func() { stop(); <-done }
	return t, nil
}

// spawn starts node i's process (a new name first for a Replace).
func (t *procTopology) spawn(i int, how strategy.Start) error {
	nd := t.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if how == strategy.Replace && t.strat.Members() {
		nd.name = fmt.Sprintf("n%d", t.nextName)
		t.nextName++
	} else if how == strategy.Replace {
		how = strategy.Restart // no cluster membership to replace
	}
	args, err := t.plan.Args(i, how, nd.name)
	if err != nil {
		return err
	}
	full := []string{"serve", "--strategy", t.strat.Name, "--node", nd.name, "--addr", nd.addr,
		// Go's cookie jar sends Secure cookies over HTTPS only.
		"--insecure-cookie", "--log-level", "warn",
		"--idle-timeout", idleTimeout.String(), "--lifetime", lifetime.String()}
	full = append(append(full, t.row.Flags...), args...)
	p, err := startProcess(t.bin, full, filepath.Join(t.dir, "node-"+strconv.Itoa(i+1)+".log"))
	if err != nil {
		return err
	}
	nd.proc, nd.calls = p, 0
	return nil
}

// ready waits until node i answers its health check.
func (t *procTopology) ready(ctx context.Context, i int) error {
	nd := t.nodes[i]
	nd.mu.Lock()
	p, name := nd.proc, nd.name
	nd.mu.Unlock()
	return waitReady(ctx, p, "http://"+nd.addr+"/healthz", "node "+name)
}

// restart starts a new process in node i's place, as how says, and waits
// until it is ready.
func (t *procTopology) restart(ctx context.Context, i int, how strategy.Start) error {
	if err := t.spawn(i, how); err != nil {
		return err
	}
	return t.ready(ctx, i)
}

// kill kills node i's process with SIGKILL and returns its name.
func (t *procTopology) kill(i int) string {
	nd := t.nodes[i]
	nd.mu.Lock()
	p := nd.proc
	nd.proc = nil
	t.deadCalls.Add(nd.calls)
	nd.calls = 0
	name := nd.name
	nd.mu.Unlock()
	if p != nil {
		p.kill()
	}
	return name
}

// liveURLs returns the base URLs of the nodes whose process runs, with
// their names.
func (t *procTopology) liveURLs() []nodeURL {
	var out []nodeURL
	for _, nd := range t.nodes {
		nd.mu.Lock()
		if nd.proc != nil && !nd.proc.exited() {
			out = append(out, nodeURL{name: nd.name, url: "http://" + nd.addr})
		}
		nd.mu.Unlock()
	}
	return out
}

// storeCalls returns the nodes' store calls so far, as their metrics
// said at the last scrape.
func (t *procTopology) storeCalls() int64 {
	n := t.deadCalls.Load()
	for _, nd := range t.nodes {
		nd.mu.Lock()
		n += nd.calls
		nd.mu.Unlock()
	}
	return n
}

func (t *procTopology) scrapeLoop(ctx context.Context) {
	tick := time.NewTicker(scrapeEvery)
	defer tick.Stop()
	for {
		t.scrape(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// scrape reads sessionkit_store_calls_total of every live node.
func (t *procTopology) scrape(ctx context.Context) {
	for _, nd := range t.nodes {
		nd.mu.Lock()
		p := nd.proc
		nd.mu.Unlock()
		if p == nil {
			continue
		}
		v, err := scrapeMetric(ctx, "http://"+nd.addr+"/metrics", "sessionkit_store_calls_total")
		if err != nil {
			continue
		}
		nd.mu.Lock()
		if nd.proc == p { // not killed meanwhile
			nd.calls = int64(v)
		}
		nd.mu.Unlock()
	}
}

// scrapeMetric returns the sum of the samples of the metric name at url
// (Prometheus' text format).
func scrapeMetric(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return sumMetric(resp.Body, name)
}

// sumMetric sums the samples of the metric name in Prometheus' text
// format.
func sumMetric(r io.Reader, name string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		rest := line[len(name):]
		if len(rest) == 0 || (rest[0] != '{' && rest[0] != ' ') {
			continue // another metric whose name starts with name
		}
		f := strings.Fields(string(rest[bytes.LastIndexByte(rest, '}')+1:]))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// close stops the front and every node.
func (t *procTopology) close() {
	if t.stopScrape != nil {
		t.stopScrape()
	}
	if t.front != nil {
		t.front.stop()
	}
	var wg sync.WaitGroup
	for i := range t.nodes {
		wg.Go(func() { t.kill(i) })
	}
	wg.Wait()
}
