package olricstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/olric-data/olric"
	"github.com/olric-data/olric/config"
)

// MemberConfig configures an embedded Olric member: this process holds a
// share of the sessions (and backup copies of others'), and serves them to
// the other members. The zero value of every optional field means its
// default. StartMember copies the config; changing it afterwards has no
// effect.
type MemberConfig struct {
	// Addr is the host:port of the member's Olric listener, which the other
	// members and Olric clients connect to. Required; the port cannot be 0
	// (Olric does not support ephemeral ports) and the host must be an
	// address the other members can reach (not 0.0.0.0).
	Addr string
	// ClusterAddr is the host:port of the member's gossip (memberlist)
	// listener, TCP and UDP. Required, same rules as Addr.
	ClusterAddr string
	// Peers are the ClusterAddr of the other members (not their Addr).
	// Empty starts a cluster of one that others may join. The member's own
	// ClusterAddr is removed from the list.
	Peers []string
	// ReplicaCount is how many copies of each session the cluster keeps
	// (the owner's and ReplicaCount-1 backups); default 2. It must be the
	// same on every member.
	ReplicaCount int
	// WriteQuorum is how many of those copies a write must reach before
	// it is acknowledged; default 1 (Olric's default: the owner writes the
	// backups synchronously but acknowledges even if a backup refused).
	WriteQuorum int
	// PartitionCount is how many partitions the keys are spread over;
	// default 71. It must be the same on every member. Each partition a
	// member holds costs it about TableSize of memory per DMap, primary
	// and backup: keep it small for small clusters.
	PartitionCount uint64
	// TableSize is the size in bytes of the storage table each partition
	// fragment allocates up front; default 64 KiB (Olric's default is 1 MiB,
	// about 272 MiB per member). A value larger than this is stored in
	// chunks by the Store (Config.ChunkSize).
	TableSize int
	// Network selects memberlist's timing profile: "local" (failure
	// detected in about 4 s, for one host) or "lan" (about 6 s); default
	// "lan". Either way, a survivor declares a lost member dead after the
	// profile's base suspicion timeout, however few others confirm it.
	Network string
	// BalancerInterval is how often the member moves partition fragments
	// to their new owners after a membership change; default 15 s
	// (Olric's default).
	BalancerInterval time.Duration
	// RoutingPushInterval is how often the cluster's coordinator pushes
	// its routing table to every member again; default 5 s (Olric's
	// default is 1 minute). Olric pushes it at once after a membership
	// change, but a member that has not yet noticed the loss of the
	// previous coordinator refuses that push ("unrecognized cluster
	// coordinator"), and the coordinator then drops it for every member
	// until the next periodic push: meanwhile the refusing member keeps
	// sending the lost member's partitions to it, and they fail. This
	// interval bounds that outage.
	RoutingPushInterval time.Duration
	// StartTimeout bounds StartMember's wait for the member to join and be
	// ready; default 30 s.
	StartTimeout time.Duration
	// Logger receives Olric's and memberlist's logs: their INFO and DEBUG
	// lines at slog's Debug level, WARN at Warn, ERROR at Error. Default
	// slog.Default().
	Logger *slog.Logger
}

// Member is an embedded Olric member. Its methods are safe for concurrent
// use. Shut it down after closing the stores that use it.
type Member struct {
	db       *olric.Olric
	client   *olric.EmbeddedClient
	name     string // Olric's member name: Addr
	replicas int
	done     chan struct{} // closed when Start returns
	startErr error
	stopOnce sync.Once
	stopErr  error
}

// startMu serializes member start-ups in one process: Olric tracks the
// start of a member with process-wide state.
var startMu sync.Mutex

func checkAddr(what, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("olricstore: %s %q: %w", what, addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("olricstore: %s %q: the port must be a number from 1 to 65535", what, addr)
	}
	if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		return "", 0, fmt.Errorf("olricstore: %s %q: name an address the other members can reach", what, addr)
	}
	return host, p, nil
}

// StartMember starts an embedded Olric member, joins the peers (or starts
// a new cluster when none answers within Olric's join attempts) and waits
// until it serves requests. Members in one process are started one after
// another.
func StartMember(cfg MemberConfig) (*Member, error) {
	host, port, err := checkAddr("Addr", cfg.Addr)
	if err != nil {
		return nil, err
	}
	chost, cport, err := checkAddr("ClusterAddr", cfg.ClusterAddr)
	if err != nil {
		return nil, err
	}
	if cfg.Addr == cfg.ClusterAddr {
		return nil, errors.New("olricstore: Addr and ClusterAddr must differ")
	}
	var peers []string
	for _, p := range cfg.Peers {
		if _, _, err := checkAddr("peer", p); err != nil {
			return nil, err
		}
		if p != cfg.ClusterAddr {
			peers = append(peers, p)
		}
	}
	if cfg.ReplicaCount <= 0 {
		cfg.ReplicaCount = 2
	}
	if cfg.WriteQuorum <= 0 {
		cfg.WriteQuorum = 1
	}
	if cfg.WriteQuorum > cfg.ReplicaCount {
		return nil, fmt.Errorf("olricstore: WriteQuorum %d is above ReplicaCount %d", cfg.WriteQuorum, cfg.ReplicaCount)
	}
	if cfg.PartitionCount == 0 {
		cfg.PartitionCount = 71
	}
	if cfg.TableSize <= 0 {
		cfg.TableSize = 64 << 10
	}
	if cfg.TableSize < 4<<10 {
		return nil, fmt.Errorf("olricstore: TableSize %d is below 4 KiB", cfg.TableSize)
	}
	switch cfg.Network {
	case "":
		cfg.Network = "lan"
	case "local", "lan":
	default:
		return nil, fmt.Errorf("olricstore: Network %q: want \"local\" or \"lan\"", cfg.Network)
	}
	if cfg.BalancerInterval <= 0 {
		cfg.BalancerInterval = 15 * time.Second
	}
	if cfg.RoutingPushInterval <= 0 {
		cfg.RoutingPushInterval = 5 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	mc, err := memberlistConfig(cfg.Network)
	if err != nil {
		return nil, err
	}
	mc.BindAddr, mc.BindPort = chost, cport
	if net.ParseIP(chost) != nil { // a name is resolved by Olric and memberlist
		mc.AdvertiseAddr, mc.AdvertisePort = chost, cport
	}

	started := make(chan struct{})
	c := &config.Config{
		BindAddr:                host,
		BindPort:                port,
		ReplicaCount:            cfg.ReplicaCount,
		WriteQuorum:             cfg.WriteQuorum,
		ReadQuorum:              1,
		MemberCountQuorum:       1,
		PartitionCount:          cfg.PartitionCount,
		Peers:                   peers,
		MemberlistConfig:        mc,
		TriggerBalancerInterval: cfg.BalancerInterval,
		// Retries a routing-table push that a member refused (see
		// MemberConfig.RoutingPushInterval); each push costs the
		// coordinator a partition-length query per owner of each
		// partition and one message per member.
		RoutingTablePushInterval: cfg.RoutingPushInterval,
		// INFO lines pass Olric's WARN filter (its level order is DEBUG,
		// WARN, ERROR, INFO); the writer below sends them to Debug.
		LogLevel:     config.LogLevelWarn,
		LogVerbosity: 2,
		Logger:       log.New(&slogWriter{log: cfg.Logger.With("component", "olric", "member", cfg.Addr)}, "", 0),
		DMaps: &config.DMaps{Engine: &config.Engine{Config: map[string]any{
			"tableSize": uint64(cfg.TableSize),
		}}},
		Started: func() { close(started) },
	}
	startMu.Lock()
	defer startMu.Unlock()
	db, err := olric.New(c)
	if err != nil {
		return nil, fmt.Errorf("olricstore: StartMember %s: %w", cfg.Addr, err)
	}
	// Olric names the member by its resolved bind address (olric.New
	// writes it into c), which is how Members reports it.
	m := &Member{db: db, name: c.MemberlistConfig.Name, replicas: cfg.ReplicaCount, done: make(chan struct{})}
	go func() {
		m.startErr = db.Start()
		close(m.done)
	}()
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-started:
	case <-m.done:
		m.Shutdown(context.Background())
		return nil, fmt.Errorf("olricstore: StartMember %s: %w", cfg.Addr, m.startErr)
	case <-timer.C:
		m.Shutdown(context.Background())
		return nil, fmt.Errorf("olricstore: StartMember %s: not ready after %v", cfg.Addr, cfg.StartTimeout)
	}
	m.client = db.NewEmbeddedClient()
	return m, nil
}

// memberlistConfig returns memberlist's settings for network ("local" or
// "lan"), with failure detection bounded by the base suspicion timeout.
//
// memberlist declares a member that stopped answering its probes dead
// once a suspicion timeout has run out. The timeout starts at
// SuspicionMaxTimeoutMult (6) times the base timeout (3 s "local", 4 s
// "lan") and shrinks to the base as other members confirm the suspicion,
// up to SuspicionMult-2 confirmations (1 "local", 2 "lan") when the
// member counts that many others besides itself and the suspect. In the
// small clusters sessionkit runs, a crash can leave too few survivors to
// confirm: a dead member stays counted for GossipToTheDeadTime (15 s
// "local", 30 s "lan") after it is gone, so with "lan" a member killed
// within 30 s of another (a replaced member followed by a second failure)
// leaves two survivors that count four members, expect two confirmations
// each and can get one: they wait 11.4 s instead of 4. A survivor whose
// confirmation does not arrive waits the whole 18 s ("local") or 24 s
// ("lan"). The cluster's routing table changes only once its coordinator
// has noticed, and a member that has not noticed yet refuses it
// (MemberConfig.RoutingPushInterval): all that time, the sessions the
// dead member owned can be neither read nor written. Measured: in
// TestCrash ("local"), the survivor that was to be the next coordinator
// declared the killed member dead 18 s after its suspicion started, 15 s
// after the other survivor (no confirmation reached it), and the sessions
// the killed member owned stayed unreadable for 22 s; TestDetection
// ("lan") took 14.6 and 15.2 s from the kill to both survivors' notice,
// and 5.7 to 6.9 s with the bound.
//
// With SuspicionMaxTimeoutMult 1 every survivor declares the member dead
// the base timeout after its own suspicion starts, confirmations or not.
// What it gives up: a member that is alive but cannot answer for that long
// (a pause, an overloaded host) is declared dead sooner; it refutes when it
// hears of it and rejoins, and its partitions move twice.
func memberlistConfig(network string) (*memberlist.Config, error) {
	mc, err := config.NewMemberlistConfig(network)
	if err != nil {
		return nil, fmt.Errorf("olricstore: %w", err)
	}
	mc.SuspicionMaxTimeoutMult = 1
	return mc, nil
}

// Name returns the member's name in the cluster: its Olric address.
func (m *Member) Name() string { return m.name }

// Shutdown leaves the cluster (the others notice at once, instead of
// after the failure-detection delay) and stops the member. Call it on
// SIGTERM before stopping the HTTP server. Calls after the first return
// its result.
func (m *Member) Shutdown(ctx context.Context) error {
	m.stopOnce.Do(func() {
		m.stopErr = m.db.Shutdown(ctx)
		select {
		case <-m.done:
		case <-ctx.Done():
		}
	})
	return m.stopErr
}

// slogWriter turns the lines of Olric's and memberlist's log.Logger into
// slog records, by their "[LEVEL]" tag.
type slogWriter struct {
	log *slog.Logger

	mu            sync.Mutex
	lastReplica   string    // the last "Desired replica count" warning
	lastReplicaAt time.Time // when it was logged at Warn
}

// replicaWarning starts the warning Olric's coordinator logs on every
// routing-table push (every MemberConfig.RoutingPushInterval) while the
// cluster has fewer members than ReplicaCount.
var replicaWarning = []byte("[WARN] Desired replica count is")

func (w *slogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelDebug
	head := line[:min(len(line), 40)]
	switch {
	case bytes.Contains(head, []byte("[ERR] memberlist:")),
		bytes.Contains(head, []byte("Join attempt returned")):
		// An unreachable peer (memberlist) or one not started yet (a
		// join attempt) is the cluster's business as usual.
		level = slog.LevelWarn
	case bytes.Contains(head, []byte("[ERR")):
		level = slog.LevelError
	case bytes.HasPrefix(line, replicaWarning):
		// At Warn when it changes and once a minute (as often as with
		// Olric's default push interval), not on every push.
		w.mu.Lock()
		if string(line) != w.lastReplica || time.Since(w.lastReplicaAt) >= time.Minute {
			w.lastReplica, w.lastReplicaAt = string(line), time.Now()
			level = slog.LevelWarn
		}
		w.mu.Unlock()
	case bytes.Contains(head, []byte("[WARN]")):
		level = slog.LevelWarn
	}
	if w.log.Enabled(context.Background(), level) {
		w.log.Log(context.Background(), level, string(line))
	}
	return len(p), nil
}
