package strategy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sessionkit/sessionkit/store/natsstore"
)

// DefaultNATSURL is the default of --nats: a local NATS server.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// natsStrategy is a distributed cache: with --cluster-addr each node runs
// a NATS node of a JetStream cluster (a KV bucket replicated on up to 3
// of them), or it is a client of a NATS deployment.
var natsStrategy = Strategy{
	Name:    "nats",
	What:    "distributed cache: an embedded NATS node in each app node, bucket with 3 replicas",
	Shared:  true,
	Breaker: true,
	Flags:   []*Flag{natsFlag, clusterAddrFlag, peersFlag, dataDirFlag, removeDeadFlag, nearCacheFlag},
	uses:    clustered("nats", "peers", "data-dir", "remove-dead-after"),
	check:   checkNATS,
	mode:    clusterMode,
	open:    openNATS,
	testbed: newNATSTestbed,
	plan:    natsPlan,
}

var (
	natsFlag = &Flag{Name: "nats", When: "--strategy nats without --cluster-addr",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.NATSURL, name, DefaultNATSURL,
				"NATS `url` for --strategy nats in client mode (an existing NATS with JetStream)")
		}}
	dataDirFlag = &Flag{Name: "data-dir", When: "--strategy nats and --cluster-addr",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.DataDir, name, "",
				"with --cluster-addr: the embedded node's JetStream `directory`\n"+
					"        (default: a new temporary directory, removed on exit)")
		}}

	removeDeadFlag = &Flag{Name: "remove-dead-after", When: "--strategy nats and --cluster-addr",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.Duration(&s.RemoveDeadAfter, name, natsstore.DefaultRemoveDeadAfter,
				"with --cluster-addr: remove a member of the JetStream cluster silent for this\n"+
					"        `duration`, so that a dead node replaced by one of another name stops\n"+
					"        counting towards the quorum (0: never; see store/natsstore)")
		}}
)

func checkNATS(s *Settings) error {
	if s.RemoveDeadAfter < 0 {
		return &FlagError{"remove-dead-after", s.RemoveDeadAfter.String(), "must be 0 (never) or positive"}
	}
	return nil
}

func openNATS(ctx context.Context, n *Node) (*Sessions, error) {
	if n.Settings.ClusterAddr == "" {
		st, err := natsstore.New(ctx, natsstore.Config{URL: n.Settings.NATSURL, Timeout: n.Timeout, Logger: n.logger()})
		if err != nil {
			return nil, err
		}
		return storedNear(n, st, true, nil)
	}
	srv, removeDir, err := startNATS(n)
	if err != nil {
		return nil, err
	}
	return natsOn(ctx, n, srv, true, func(*slog.Logger) { srv.Shutdown(); removeDir() })
}

// startNATS starts node n's embedded NATS node, on n.Settings.DataDir or,
// if that is empty, a new temporary directory that removeDir removes.
func startNATS(n *Node) (srv *natsstore.Node, removeDir func(), err error) {
	dir, removeDir := n.Settings.DataDir, func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "sessionkit-nats-"+n.Name+"-")
		if err != nil {
			return nil, nil, err
		}
		dir, removeDir = tmp, func() { os.RemoveAll(tmp) }
	}
	peers := splitList(n.Settings.Peers)
	nc := natsstore.NodeConfig{Name: n.Name, Dir: dir, ClusterAddr: n.Settings.ClusterAddr, Peers: peers,
		RemoveDeadAfter: n.Settings.RemoveDeadAfter, Logger: n.logger()}
	if nc.RemoveDeadAfter == 0 {
		nc.RemoveDeadAfter = -1 // --remove-dead-after 0: never
	}
	if len(peers) == 0 {
		nc.ClusterAddr = "" // a cluster of one would wait for a quorum that never comes
	}
	if srv, err = natsstore.StartNode(nc); err != nil {
		removeDir()
		return nil, nil, err
	}
	return srv, removeDir, nil
}

// natsOn opens node n's store on its embedded NATS node srv, in a bucket
// replicated on up to 3 nodes; closing the store calls stop, which shuts
// the NATS node down. If the store cannot open, stop is called too.
func natsOn(ctx context.Context, n *Node, srv *natsstore.Node, guard bool, stop func(*slog.Logger)) (*Sessions, error) {
	st, err := natsstore.New(ctx, natsstore.Config{URL: srv.ClientURL(),
		Replicas: min(3, 1+len(splitList(n.Settings.Peers))), Timeout: n.Timeout, Logger: n.logger()})
	if err != nil {
		stop(n.logger())
		return nil, err
	}
	return storedNear(n, st, guard, stop)
}

// newNATSTestbed runs one NATS node inside each node, all on loopback,
// each on its own directory under TestbedConfig.Dir: a node's death takes
// its NATS node with it, and its restart comes back on its directory.
func newNATSTestbed(_ context.Context, c *TestbedConfig) (*Testbed, error) {
	if c.Dir == "" {
		return nil, errMissing("nats", "Dir")
	}
	routes, err := testbedAddrs(c, "nats", c.Nodes)
	if err != nil {
		return nil, err
	}
	// Node i's settings: its directory and cluster listener, the others'
	// as its peers.
	settings := func(i int) Settings {
		s := c.Settings
		s.DataDir = filepath.Join(c.Dir, "nats-"+nodeName(i))
		s.ClusterAddr, s.Peers = routes[i], strings.Join(others(routes, i), ",")
		return s
	}
	start := func(i int, _ bool) (*natsstore.Node, error) {
		srv, _, err := startNATS(&Node{Name: nodeName(i), Settings: settings(i)})
		return srv, err
	}
	open := func(ctx context.Context, i int, n *Node, srv *natsstore.Node, stop func(*slog.Logger)) (*Sessions, error) {
		n.Settings = settings(i)
		return natsOn(ctx, n, srv, false, stop)
	}
	return newClusterTestbed(c.Nodes, start, (*natsstore.Node).Shutdown, open)
}
