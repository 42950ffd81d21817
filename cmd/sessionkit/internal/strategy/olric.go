package strategy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionkit/sessionkit/store/olricstore"
)

// DefaultOlricAddrs is the default of --olric: a local Olric member.
const DefaultOlricAddrs = "127.0.0.1:3320"

// memberShutdownTimeout bounds the shutdown of an embedded Olric member.
const memberShutdownTimeout = 10 * time.Second

// olricStrategy is a distributed cache: with --cluster-addr each node
// runs an Olric member (2 copies of each session once a second member
// has joined), or it is a client of an Olric cluster run apart.
var olricStrategy = Strategy{
	Name:    "olric",
	What:    "distributed cache: an embedded Olric member in each app node, 2 copies of each session",
	Shared:  true,
	Breaker: true,
	Flags:   []*Flag{olricFlag, clusterAddrFlag, peersFlag, olricAddrFlag},
	uses:    clustered("olric", "peers", "olric-addr"),
	mode:    clusterMode,
	open:    openOlric,
	testbed: newOlricTestbed,
	plan:    olricPlan,
}

var (
	olricFlag = &Flag{Name: "olric", When: "--strategy olric without --cluster-addr",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.OlricAddrs, name, DefaultOlricAddrs,
				"Olric member `addresses` (host:port,...) for --strategy olric in client mode\n"+
					"        (an Olric cluster run apart)")
		}}
	olricAddrFlag = &Flag{Name: "olric-addr", When: "--strategy olric and --cluster-addr",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.OlricAddr, name, "",
				"with --strategy olric and --cluster-addr: the embedded member's Olric\n"+
					"        `host:port`, which the other members connect to (default: the\n"+
					"        --cluster-addr host with its port plus one)")
		}}
)

// goRedisLog takes the log lines of go-redis, Olric's own client, which
// would otherwise go to the process's stderr (a line per failed dial while
// a member is down, many a second): they go to the first node's logger at
// debug level. go-redis has one logger per process.
type goRedisLog struct{ l *slog.Logger }

func (g goRedisLog) Printf(_ context.Context, format string, v ...any) {
	g.l.Debug("olric client: " + fmt.Sprintf(format, v...))
}

var goRedisLogOnce sync.Once

func takeGoRedisLog(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	goRedisLogOnce.Do(func() { redis.SetLogger(goRedisLog{l}) })
}

func openOlric(ctx context.Context, n *Node) (*Sessions, error) {
	takeGoRedisLog(n.logger())
	if n.Settings.ClusterAddr == "" {
		st, err := olricstore.New(ctx, olricstore.Config{Addrs: splitList(n.Settings.OlricAddrs), Timeout: n.Timeout,
			Logger: n.logger()})
		if err != nil {
			return nil, err
		}
		return stored(n, st, true, nil)
	}
	m, err := startOlric(n, "")
	if err != nil {
		return nil, err
	}
	s, err := olricOn(ctx, n, m, true, func(log *slog.Logger) { stopOlric(m, log) })
	if err != nil {
		return nil, err
	}
	n.logger().Info("serve: Olric member started", "olric_addr", m.Name(), "cluster_addr", n.Settings.ClusterAddr)
	return s, nil
}

// startOlric starts node n's embedded Olric member, with memberlist's
// network profile (default "lan").
func startOlric(n *Node, network string) (*olricstore.Member, error) {
	addr := n.Settings.OlricAddr
	if addr == "" {
		host, port, err := net.SplitHostPort(n.Settings.ClusterAddr)
		if err != nil {
			return nil, fmt.Errorf("--cluster-addr %q: %w", n.Settings.ClusterAddr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p >= 65535 {
			return nil, fmt.Errorf("--cluster-addr %q: want a port from 1 to 65534 (the Olric port is the next one)", n.Settings.ClusterAddr)
		}
		addr = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	return olricstore.StartMember(olricstore.MemberConfig{
		Addr: addr, ClusterAddr: n.Settings.ClusterAddr, Peers: splitList(n.Settings.Peers), Network: network,
		Logger: n.logger(),
	})
}

// olricOn opens node n's store on its embedded member m; closing the
// store calls stop, which shuts the member down (and tells the others at
// once that it left). If the store cannot open, stop is called too.
func olricOn(ctx context.Context, n *Node, m *olricstore.Member, guard bool, stop func(*slog.Logger)) (*Sessions, error) {
	st, err := olricstore.New(ctx, olricstore.Config{Member: m, Timeout: n.Timeout, Logger: n.logger()})
	if err != nil {
		stop(n.logger())
		return nil, err
	}
	return stored(n, st, guard, stop)
}

// stopOlric shuts the member m down, reporting a failure to log.
func stopOlric(m *olricstore.Member, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), memberShutdownTimeout)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		log.Warn("serve: shutting down the Olric member", "err", err)
	}
}

// newOlricTestbed runs one Olric member inside each node, all on
// loopback: a node's death takes its member with it.
func newOlricTestbed(_ context.Context, c *TestbedConfig) (*Testbed, error) {
	takeGoRedisLog(c.Logger)
	addrs, err := testbedAddrs(c, "olric", 2*c.Nodes)
	if err != nil {
		return nil, err
	}
	olricAddrs, gossip := addrs[:c.Nodes], addrs[c.Nodes:]
	// Node i's settings: its member's addresses, the others' as its
	// peers.
	settings := func(i int) Settings {
		s := c.Settings
		s.OlricAddr, s.ClusterAddr, s.Peers = olricAddrs[i], gossip[i], strings.Join(others(gossip, i), ",")
		return s
	}
	start := func(i int, restart bool) (*olricstore.Member, error) {
		if restart {
			// A new member, on new addresses (memberlist refuses a member
			// that comes back under a name it still remembers as gone,
			// for a while).
			addrs, err := testbedAddrs(c, "olric", 2)
			if err != nil {
				return nil, err
			}
			olricAddrs[i], gossip[i] = addrs[0], addrs[1]
		}
		// One host: a lost member is noticed in about 4 s.
		return startOlric(&Node{Name: nodeName(i), Settings: settings(i), Logger: c.Logger}, "local")
	}
	open := func(ctx context.Context, i int, n *Node, m *olricstore.Member, stop func(*slog.Logger)) (*Sessions, error) {
		n.Settings = settings(i)
		return olricOn(ctx, n, m, false, stop)
	}
	// One after another, as newClusterTestbed starts them: Olric tracks
	// start-ups process-wide.
	return newClusterTestbed(c.Nodes, start, func(m *olricstore.Member) { stopOlric(m, discard) }, open)
}
