package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"

	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/discovery/gossip"
)

// defaultGossipPort completes a cluster.join entry given without a port.
const defaultGossipPort = "7946"

func startCluster(cfg *config.Config, log *slog.Logger) (*gossip.Cluster, error) {
	var keys [][]byte
	if cfg.Cluster.SecretKeyFile != "" {
		var err error
		if keys, err = config.ReadKeys(cfg.Cluster.SecretKeyFile); err != nil {
			return nil, fmt.Errorf("agent: cluster.secret-key-file: %w", err)
		}
	}
	join := make([]string, len(cfg.Cluster.Join))
	for i, peer := range cfg.Cluster.Join {
		if _, _, err := net.SplitHostPort(peer); err != nil {
			peer = net.JoinHostPort(peer, defaultGossipPort)
		}
		join[i] = peer
	}
	c, err := gossip.Start(gossip.Options{
		Node: cfg.Node.Name, Bind: cfg.Cluster.Bind, Advertise: cfg.Node.Advertise, Join: join,
		Keys: keys, Label: cfg.Cluster.Label, RejoinGrace: cfg.Cluster.RejoinGrace, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return c, nil
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
