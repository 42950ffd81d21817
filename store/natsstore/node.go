package natsstore

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

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
}

// Node is an embedded NATS server with JetStream.
type Node struct {
	s *server.Server
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
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		NoLog:      true,
		NoSigs:     true,
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
	return &Node{s: s}, nil
}

// ClientURL returns the URL clients connect to, e.g. nats://127.0.0.1:4222.
func (n *Node) ClientURL() string { return n.s.ClientURL() }

// Shutdown stops the node and waits until it has stopped.
func (n *Node) Shutdown() {
	n.s.Shutdown()
	n.s.WaitForShutdown()
}
