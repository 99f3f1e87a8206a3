package agent

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/freeport"
	"github.com/berth-lb/berth/internal/loadtest"
)

// TestTakeoverInAFleet: host a routes only to host b's containers, which it
// knows by gossip. A new agent of host a takes over from the running one:
// the old one leaves the fleet so the new one can bind the gossip port, the
// new one waits for b's targets before it says it is ready, and no request
// of a steady load through host a fails.
func TestTakeoverInAFleet(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/examples/app")
	_, webPort, _ := net.SplitHostPort(freeport.TCP(t, "127.0.0.2"))
	b := startHostAgent(t, "host-b", "127.0.0.3", webPort, freeport.TCP(t, "127.0.0.3"), nil, "")
	dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: map[string]string{b.prefix + ".group": "web"},
		Ports: []string{"8080/tcp"}, HostIP: "0.0.0.0", StopTimeout: 30})
	socket := filepath.Join(t.TempDir(), "upgrade.sock")
	a := startHostAgent(t, "host-a", "127.0.0.2", webPort, freeport.TCP(t, "127.0.0.2"), []string{b.gossip}, "", "upgrade: {socket: "+socket+"}")
	httpc := &http.Client{Timeout: 5 * time.Second}
	dockertest.Eventually(t, 15*time.Second, func() bool { return len(answerers(httpc, a.url+"/", 4)) == 1 }, "host a does not route to host b's container")
	oldName := a.agent.cluster.Name()

	load := loadtest.Start(a.url+"/", 200)
	time.Sleep(time.Second)
	cfg, err := os.ReadFile(a.file)
	if err != nil {
		t.Fatal(err)
	}
	next := startAgentWith(t, strings.TrimPrefix(a.url, "http://"), string(cfg))
	select {
	case err := <-a.exited:
		a.exited <- err
		if err != nil {
			t.Fatalf("the old agent of host a: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the old agent of host a did not exit after the takeover")
	}
	time.Sleep(time.Second)
	res := load.Stop()
	t.Logf("load through host a: %d answered, %d failed", res.OK, res.Failed)
	if res.Failed > 0 {
		t.Fatalf("%d requests failed while host a's agent was replaced: %v", res.Failed, res.Errors)
	}
	if next.agent.cluster.Name() == oldName {
		t.Fatal("the new agent runs the old one's memberlist instance")
	}
	dockertest.Eventually(t, 10*time.Second, func() bool {
		for _, n := range b.agent.Nodes() {
			if n.Name == next.agent.cluster.Name() && n.State == "alive" {
				return true
			}
		}
		return false
	}, "host b does not see host a's new agent")
}
