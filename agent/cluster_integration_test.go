package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/freeport"
	"github.com/berth-lb/berth/internal/loadtest"
)

// hostAgent is one simulated host of an in-process fleet: an agent on its own
// loopback address (127.0.0.x) that sees only the containers with its own
// label prefix on the shared Docker engine.
type hostAgent struct {
	*runningAgent
	node, ip, prefix, gossip string
}

// fleetKeyFile writes the in-process fleets' gossip key, the same on every
// call: agents that share a host route each other's targets only with a key.
func fleetKeyFile(t *testing.T) string {
	file := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString([]byte("berth-test-key-0"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// startHostAgent starts the agent of a host; prefix "" picks a new label
// prefix; extra are more lines of config.
func startHostAgent(t *testing.T, node, ip, webPort, gossipAddr string, join []string, prefix string, extra ...string) *hostAgent {
	t.Helper()
	if prefix == "" {
		suffix := make([]byte, 4)
		rand.Read(suffix)
		prefix = "berthfleet" + hex.EncodeToString(suffix)
	}
	h := &hostAgent{node: node, ip: ip, prefix: prefix, gossip: gossipAddr}
	joinYAML := "[]"
	if len(join) > 0 {
		joinYAML = "[" + strings.Join(join, ", ") + "]"
	}
	web := net.JoinHostPort(ip, webPort)
	h.runningAgent = startAgentWith(t, web, fmt.Sprintf(`node: {name: %s, advertise: %s}
docker: {label-prefix: %s, resync: 5s}
cluster: {enabled: true, bind: "%s", join: %s, rejoin-grace: 30s, secret-key-file: "%s"}
admin: {listen: "%s"}
listeners:
  - name: web
    protocol: http
    address: %s
    default: {forward: web}
groups:
  web: {deregistration-delay: 30s, connect-timeout: 1s}
%s`, node, ip, h.prefix, gossipAddr, joinYAML, fleetKeyFile(t), freeport.TCP(t, ip), web, strings.Join(extra, "\n")))
	return h
}

// TestFleetInProcess runs two agents as two hosts on one Docker engine: host
// b's containers are published on every interface and advertised at
// 127.0.0.3, host a has none and routes to b's through gossip.
func TestFleetInProcess(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/examples/app")
	// One listener port on both hosts, as in a real fleet: the same config.
	_, webPort, _ := net.SplitHostPort(freeport.TCP(t, "127.0.0.2"))
	a := startHostAgent(t, "host-a", "127.0.0.2", webPort, freeport.TCP(t, "127.0.0.2"), nil, "")
	b := startHostAgent(t, "host-b", "127.0.0.3", webPort, freeport.TCP(t, "127.0.0.3"), []string{a.gossip}, "")
	run := func() string {
		return dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: map[string]string{b.prefix + ".group": "web"},
			Ports: []string{"8080/tcp"}, HostIP: "0.0.0.0", StopTimeout: 30})
	}
	ids := []string{run(), run()}
	names := map[string]bool{hostname(t, cli, ids[0]): true, hostname(t, cli, ids[1]): true}
	httpc := &http.Client{Timeout: 5 * time.Second}

	dockertest.Eventually(t, 15*time.Second, func() bool {
		seen := answerers(httpc, a.url+"/", 8)
		return len(seen) == 2 && names[firstKey(seen)]
	}, "host a does not route to host b's two containers")
	for _, tg := range a.agent.Targets() {
		if !strings.HasPrefix(tg.Address, "127.0.0.3:") || tg.Source != "gossip" || tg.Node != "host-b" {
			t.Fatalf("host a's view of b's target: %+v", tg)
		}
	}
	nodes := a.agent.Nodes()
	if len(nodes) != 2 || nodes[1].Node != "host-b" || nodes[1].State != "alive" || nodes[1].ConfigDrift {
		t.Fatalf("host a's nodes: %+v", nodes)
	}

	t.Run("docker stop on host b under load to host a fails no request", func(t *testing.T) {
		load := loadtest.Start(a.url+"/sleep?ms=20", 200)
		time.Sleep(time.Second)
		if err := cli.ContainerStop(context.Background(), ids[0], container.StopOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		res := load.Stop()
		ok, failed, errs := res.OK, res.Failed, res.Errors
		t.Logf("load: %d ok, %d failed", ok, failed)
		if failed != 0 {
			t.Fatalf("%d requests failed (%d ok): %v; balancer errors: %+v", failed, ok, errs, a.agent.lb.Listeners())
		}
		ids = append(ids[1:], run())
	})

	t.Run("host b's agent restarting loses no request and no capacity", func(t *testing.T) {
		dockertest.Eventually(t, 15*time.Second, func() bool { return len(answerers(httpc, a.url+"/", 8)) == 2 }, "the new container on b does not serve")
		load := loadtest.Start(a.url+"/", 200)
		time.Sleep(500 * time.Millisecond)
		b.stop()
		time.Sleep(time.Second)
		if n := len(a.agent.Targets()); n != 2 {
			t.Errorf("while b's agent is away, a routes to %d targets, want b's 2", n)
		}
		startHostAgent(t, "host-b", "127.0.0.3", webPort, b.gossip, []string{a.gossip}, b.prefix)
		dockertest.Eventually(t, 10*time.Second, func() bool {
			for _, n := range a.agent.Nodes() {
				if n.Node == "host-b" && n.State == "alive" && n.Targets == 2 {
					return true
				}
			}
			return false
		}, "the restarted agent of b did not rejoin with its targets: %+v", a.agent.Nodes())
		time.Sleep(500 * time.Millisecond)
		res := load.Stop()
		ok, failed, errs := res.OK, res.Failed, res.Errors
		t.Logf("load across b's restart: %d ok, %d failed", ok, failed)
		if failed != 0 {
			t.Fatalf("%d requests failed (%d ok): %v", failed, ok, errs)
		}
	})
}
