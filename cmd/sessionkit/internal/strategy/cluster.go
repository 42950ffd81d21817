package strategy

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
)

// The flags of the strategies whose node may be a member of an embedded
// cluster (olric, nats).
var (
	clusterAddrFlag = &Flag{Name: "cluster-addr", When: "--strategy nats or olric",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.ClusterAddr, name, "",
				"with --strategy nats or olric: run an embedded NATS node or Olric member whose\n"+
					"        cluster (gossip) listener is this `host:port`, instead of connecting to\n"+
					"        --nats or --olric")
		}}
	peersFlag = &Flag{Name: "peers", When: "--strategy nats or olric and --cluster-addr",
		define: func(fs FlagSet, name string, s *Settings) {
			fs.String(&s.Peers, name, "", "with --cluster-addr: the other nodes' cluster `addresses`, host:port,...")
		}}
)

// clustered is the Uses of a strategy whose node is either a client of a
// cluster run apart, configured by clientFlag, or, with --cluster-addr, a
// member of an embedded one, configured by the embedded flags.
func clustered(clientFlag string, embedded ...string) func(string, *Settings) bool {
	return func(flag string, s *Settings) bool {
		switch {
		case flag == clientFlag:
			return s.ClusterAddr == ""
		case slices.Contains(embedded, flag):
			return s.ClusterAddr != ""
		}
		return true
	}
}

// clusterMode is the Describe of such a strategy: "with --cluster-addr"
// for an embedded member.
func clusterMode(s *Settings) string {
	if s.ClusterAddr != "" {
		return " with --cluster-addr"
	}
	return ""
}

// testbedAddrs returns n free loopback addresses from c.FreeAddrs, which
// the testbed of strategy name requires.
func testbedAddrs(c *TestbedConfig, name string, n int) ([]string, error) {
	if c.FreeAddrs == nil {
		return nil, errMissing(name, "FreeAddrs")
	}
	return c.FreeAddrs(n)
}

// errMissing says that the testbed of strategy name requires the field
// of TestbedConfig.
func errMissing(name, field string) error {
	return fmt.Errorf("strategy: the %s testbed needs TestbedConfig.%s", name, field)
}

// clusterTestbed is the testbed of a strategy that embeds a cluster
// member of type M in each node: it starts every member, one after
// another, before the first node opens (the first store may need a
// quorum), and starts a killed node's member again when the node
// reopens.
type clusterTestbed[M any] struct {
	members []*M // nil: not running
	// start starts node i's member; restart says it ran before.
	start func(i int, restart bool) (*M, error)
	stop  func(m *M)
	// open opens node i's sessions on its member m; closing them calls
	// stop, which stops the member.
	open func(ctx context.Context, i int, n *Node, m *M, stop func(*slog.Logger)) (*Sessions, error)
}

func newClusterTestbed[M any](nodes int, start func(int, bool) (*M, error), stop func(*M),
	open func(context.Context, int, *Node, *M, func(*slog.Logger)) (*Sessions, error)) (*Testbed, error) {
	b := &clusterTestbed[M]{members: make([]*M, nodes), start: start, stop: stop, open: open}
	for i := range nodes {
		if err := b.startMember(i, false); err != nil {
			b.close()
			return nil, err
		}
	}
	return &Testbed{open: b.openNode, close: b.close}, nil
}

func (b *clusterTestbed[M]) startMember(i int, restart bool) error {
	m, err := b.start(i, restart)
	if err != nil {
		return err
	}
	b.members[i] = m
	return nil
}

func (b *clusterTestbed[M]) openNode(ctx context.Context, i int, n *Node) (*Sessions, error) {
	if b.members[i] == nil { // a restart after a kill
		if err := b.startMember(i, true); err != nil {
			return nil, err
		}
	}
	return b.open(ctx, i, n, b.members[i], func(*slog.Logger) { b.stopMember(i) })
}

func (b *clusterTestbed[M]) stopMember(i int) {
	if b.members[i] != nil {
		b.stop(b.members[i])
		b.members[i] = nil
	}
}

func (b *clusterTestbed[M]) close() {
	for i := range b.members {
		b.stopMember(i)
	}
}
