package natsstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultRemoveDeadAfter is NodeConfig.RemoveDeadAfter's default.
const DefaultRemoveDeadAfter = 10 * time.Second

// NodeConfig configures an embedded NATS server with JetStream, one node of
// a cluster (or a single node when Peers is empty).
type NodeConfig struct {
	// Name is the server name, unique in the cluster. Required.
	Name string
	// Dir is the JetStream storage directory. Required.
	Dir string
	// ClientAddr is the host:port clients connect to; port 0 picks a free
	// port (see Node.ClientURL). Empty means 127.0.0.1:0.
	ClientAddr string
	// ClusterAddr is the host:port of the cluster (route) listener. Empty
	// means a single node without clustering. The port should be fixed so
	// that the peers can name it.
	ClusterAddr string
	// Peers are the host:port cluster addresses of the other nodes.
	Peers []string
	// ClusterName names the cluster; default "sessionkit".
	ClusterName string
	// ReadyTimeout bounds the wait for the node to accept clients; default
	// 10 s.
	ReadyTimeout time.Duration
	// RemoveDeadAfter is how long a member of the JetStream cluster must
	// have been silent before it is removed from the cluster, so that a
	// node replaced by one of another name stops counting towards the
	// quorum (see "Replacing nodes" in the package doc). Default
	// DefaultRemoveDeadAfter; negative never removes a member.
	RemoveDeadAfter time.Duration
	// Logger receives the removals of dead members and their failures;
	// default slog.Default().
	Logger *slog.Logger
}

// Node is an embedded NATS server with JetStream.
type Node struct {
	s    *server.Server
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func splitAddr(addr, def string) (string, int, error) {
	if addr == "" {
		addr = def
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", port, err)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	return host, p, nil
}

// StartNode starts an embedded NATS server and waits until it accepts
// clients. The JetStream cluster may still be electing its leader when
// StartNode returns: New retries until the bucket can be created or its
// context ends.
func StartNode(cfg NodeConfig) (*Node, error) {
	if cfg.Name == "" || cfg.Dir == "" {
		return nil, errors.New("natsstore: StartNode: Name and Dir are required")
	}
	host, port, err := splitAddr(cfg.ClientAddr, "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("natsstore: StartNode: ClientAddr: %w", err)
	}
	// The system account, with a user whose password only this process
	// knows, lets the node remove dead members (an API of that account).
	// With no other account configured, the server binds clients that
	// give no credentials to the global account, as before.
	sys := server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT)
	sysPassword := rand.Text()
	opts := &server.Options{
		ServerName:    cfg.Name,
		Host:          host,
		Port:          port,
		JetStream:     true,
		StoreDir:      cfg.Dir,
		NoLog:         true,
		NoSigs:        true,
		Accounts:      []*server.Account{sys},
		SystemAccount: server.DEFAULT_SYSTEM_ACCOUNT,
		Users:         []*server.User{{Username: systemUser, Password: sysPassword, Account: sys}},
	}
	if cfg.ClusterAddr != "" {
		chost, cport, err := splitAddr(cfg.ClusterAddr, "")
		if err != nil {
			return nil, fmt.Errorf("natsstore: StartNode: ClusterAddr: %w", err)
		}
		name := cfg.ClusterName
		if name == "" {
			name = "sessionkit"
		}
		opts.Cluster = server.ClusterOpts{Name: name, Host: chost, Port: cport}
		if len(cfg.Peers) > 0 {
			urls := make([]string, len(cfg.Peers))
			for i, p := range cfg.Peers {
				urls[i] = "nats://" + p
			}
			opts.Routes = server.RoutesFromStr(strings.Join(urls, ","))
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsstore: StartNode: %w", err)
	}
	s.Start()
	timeout := cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if !s.ReadyForConnections(timeout) {
		s.Shutdown()
		return nil, fmt.Errorf("natsstore: StartNode %s: not ready after %v", cfg.Name, timeout)
	}
	n := &Node{s: s, stop: func() {}}
	if cfg.ClusterAddr != "" && cfg.RemoveDeadAfter >= 0 {
		p := &pilot{
			s:        s,
			password: sysPassword,
			after:    cfg.RemoveDeadAfter,
			size:     clusterSize(cfg),
			log:      cfg.Logger,
		}
		if p.after == 0 {
			p.after = DefaultRemoveDeadAfter
		}
		if p.log == nil {
			p.log = slog.Default()
		}
		ctx, stop := context.WithCancel(context.Background())
		n.stop = stop
		n.wg.Go(func() { p.run(ctx) })
	}
	return n, nil
}

// ClientURL returns the URL clients connect to, e.g. nats://127.0.0.1:4222.
func (n *Node) ClientURL() string { return n.s.ClientURL() }

// Shutdown stops the node and waits until it has stopped.
func (n *Node) Shutdown() {
	n.stop()
	n.wg.Wait()
	n.s.Shutdown()
	n.s.WaitForShutdown()
}

// systemUser is the node's own user in the system account.
const systemUser = "sessionkit-node"

// clusterSize is the number of nodes the cluster is meant to have: this
// one and its peers.
func clusterSize(cfg NodeConfig) int {
	peers := slices.Clone(cfg.Peers)
	slices.Sort(peers)
	peers = slices.Compact(peers)
	peers = slices.DeleteFunc(peers, func(p string) bool { return p == cfg.ClusterAddr })
	return 1 + len(peers)
}

// pilot removes dead members from the JetStream cluster, as Consul's
// autopilot removes dead servers: while this node leads the JetStream meta
// group, a member the leader has not heard from for RemoveDeadAfter is
// removed, provided that the members still heard from are at least the
// cluster's size (this node and its peers). So a dead member is removed
// only once another node has taken its place, and never while the cluster
// is merely short of a member that may come back under its name.
type pilot struct {
	s        *server.Server
	password string
	after    time.Duration
	size     int
	log      *slog.Logger

	nc *nats.Conn
	// leaderSince is when this node was first seen leading the meta group
	// (zero when it does not); heard is when the leader last heard from
	// each peer, by peer ID, never before leaderSince.
	leaderSince time.Time
	heard       map[string]time.Time
	tried       map[string]time.Time // last removal attempt, by peer ID
}

func (p *pilot) run(ctx context.Context) {
	defer func() {
		if p.nc != nil {
			p.nc.Close()
		}
	}()
	every := min(time.Second, max(p.after/5, 50*time.Millisecond))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.tick(ctx, time.Now())
		}
	}
}

// member is a peer of the meta group as its leader sees it.
type member struct {
	id, name string
	silent   time.Duration // since the leader last heard from it
}

func (p *pilot) tick(ctx context.Context, now time.Time) {
	if !p.s.JetStreamIsLeader() {
		p.leaderSince, p.heard = time.Time{}, nil
		return
	}
	info, err := p.s.Jsz(&server.JSzOptions{})
	if err != nil || info.Meta == nil {
		return
	}
	if p.leaderSince.IsZero() {
		p.leaderSince, p.heard, p.tried = now, map[string]time.Time{}, map[string]time.Time{}
	}
	var members []member
	for _, r := range info.Meta.Replicas {
		last := later(p.heard[r.Peer], p.leaderSince)
		if r.Active > 0 { // zero: not heard from since this server started
			last = later(last, now.Add(-r.Active))
		}
		p.heard[r.Peer] = last
		members = append(members, member{id: r.Peer, name: r.Name, silent: now.Sub(last)})
	}
	dead, ok := pickDead(members, p.size, p.after)
	if !ok || now.Sub(p.tried[dead.id]) < p.after {
		return
	}
	p.tried[dead.id] = now
	if err := p.remove(ctx, dead); err != nil {
		p.log.Warn("natsstore: removing a dead node from the JetStream cluster failed; retrying", "node", dead.name, "peer", dead.id, "silent", dead.silent.Round(time.Second), "err", err)
		return
	}
	p.log.Info("natsstore: removed a dead node from the JetStream cluster", "node", dead.name, "peer", dead.id, "silent", dead.silent.Round(time.Second), "members", len(members))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pickDead returns the member to remove, if any: of those silent for at
// least after, the one silent longest, provided that the members heard
// from since (this node included) are at least size.
func pickDead(members []member, size int, after time.Duration) (member, bool) {
	live := 1
	var dead member
	found := false
	for _, m := range members {
		switch {
		case m.silent < after:
			live++
		case !found || m.silent > dead.silent:
			dead, found = m, true
		}
	}
	return dead, found && live >= size
}

// remove asks the meta leader, through the system account, to remove the
// member; the answer comes once the removal is applied.
func (p *pilot) remove(ctx context.Context, m member) error {
	if p.nc == nil {
		nc, err := nats.Connect("", nats.InProcessServer(p.s), nats.UserInfo(systemUser, p.password),
			nats.Name("sessionkit-pilot"), nats.MaxReconnects(-1))
		if err != nil {
			return err
		}
		p.nc = nc
	}
	req, err := json.Marshal(server.JSApiMetaServerRemoveRequest{Peer: m.id})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg, err := p.nc.RequestWithContext(ctx, server.JSApiRemoveServer, req)
	if err != nil {
		return err
	}
	var resp server.JSApiMetaServerRemoveResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	return nil
}
