package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/discovery/gossip"
)

// defaultGossipPort completes a cluster.join entry given without a port.
const defaultGossipPort = "7946"

func startCluster(cfg *config.Config, version string, log *slog.Logger, own *ownSockets) (*gossip.Cluster, error) {
	var keys [][]byte
	if cfg.Cluster.SecretKeyFile != "" {
		var err error
		if keys, err = config.ReadKeys(cfg.Cluster.SecretKeyFile); err != nil {
			return nil, fmt.Errorf("agent: cluster.secret-key-file: %w", err)
		}
	}
	if insecureCluster(cfg) {
		log.Warn("agent: cluster.insecure: gossip is reachable from other hosts and has no key; anyone who reaches it can join the fleet "+
			"and send this agent's traffic to their own host. Make a key with `berth keygen` and set cluster.secret-key-file",
			"bind", cfg.Cluster.Bind)
	}
	join := make([]string, len(cfg.Cluster.Join))
	for i, peer := range cfg.Cluster.Join {
		if _, _, err := net.SplitHostPort(peer); err != nil {
			peer = net.JoinHostPort(peer, defaultGossipPort)
		}
		join[i] = peer
	}
	c, err := gossip.Start(gossip.Options{
		Node: cfg.Node.Name, Version: version, Bind: cfg.Cluster.Bind, Advertise: cfg.Node.Advertise, Join: join,
		Keys: keys, Label: cfg.Cluster.Label, RejoinGrace: cfg.Cluster.RejoinGrace, Logger: log, Reserved: own.reserved,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return c, nil
}

// insecureCluster: the fleet runs beyond loopback without a key, as
// cluster.insecure allows.
func insecureCluster(cfg *config.Config) bool {
	return cfg.Cluster.Enabled && cfg.Cluster.SecretKeyFile == "" && !config.LoopbackBind(cfg.Cluster.Bind)
}

// ownSockets are the ports this node listens on (listeners, admin API,
// gossip). No target of another node may point at one of them on an address
// of this host: a remote owner could otherwise make a public listener serve
// the admin API, or loop a listener into itself.
type ownSockets struct {
	ports atomic.Pointer[map[uint16]bool]
	local map[netip.Addr]bool // this host's interface addresses, read at start
}

func newOwnSockets() *ownSockets {
	o := &ownSockets{local: map[netip.Addr]bool{}}
	addrs, _ := net.InterfaceAddrs() // none read: loopback and unspecified still count
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			o.local[p.Addr().Unmap()] = true
		}
	}
	return o
}

// set replaces the ports with those of addrs ("host:port"; others are skipped).
func (o *ownSockets) set(addrs []string) {
	ports := make(map[uint16]bool, len(addrs))
	for _, a := range addrs {
		if _, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil && n > 0 {
				ports[uint16(n)] = true
			}
		}
	}
	o.ports.Store(&ports)
}

func (o *ownSockets) reserved(ap netip.AddrPort) bool {
	ports := o.ports.Load()
	if ports == nil || !(*ports)[ap.Port()] {
		return false
	}
	ip := ap.Addr().Unmap()
	return ip.IsLoopback() || ip.IsUnspecified() || o.local[ip]
}

// configHash identifies the routing part of a config (listeners and groups):
// nodes that disagree are shown in status, the nodes API and a metric. A
// listener counts by its port: each node may bind its own address.
func configHash(cfg *config.Config) string {
	listeners := slices.Clone(cfg.Listeners)
	for i := range listeners {
		if _, port, err := net.SplitHostPort(listeners[i].Address); err == nil {
			listeners[i].Address = ":" + port
		}
	}
	b, _ := json.Marshal(struct {
		Listeners []config.Listener
		Groups    map[string]config.Group
	}{listeners, cfg.Groups})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}
