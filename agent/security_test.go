package agent

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/discovery"
	"github.com/berth-lb/berth/discovery/gossip"
	"github.com/berth-lb/berth/internal/freeport"
)

// TestStrangerCannotServeTheAdminAPI replays the attack of issue 11: a
// stranger joins a fleet without a key and publishes a target at the agent's
// own admin port with a rule /api/v1/*, so that the public listener would
// serve the admin API. Every such target is refused; the listener answers
// 404, never the admin API.
func TestStrangerCannotServeTheAdminAPI(t *testing.T) {
	const ip = "127.0.0.21"
	web := freeport.TCP(t, ip)
	admin := freeport.TCP(t, ip)
	gossipAddr := freeport.TCP(t, ip)
	a := startAgentWith(t, web, fmt.Sprintf(`node: {name: victim, advertise: %s}
docker: {enabled: false}
cluster: {enabled: true, bind: "%s"}
admin: {listen: "%s"}
listeners:
  - name: web
    protocol: http
    address: %s
`, ip, gossipAddr, admin, web))

	const strangerIP = "127.0.0.22"
	s, err := gossip.Start(gossip.Options{Node: "stranger", Bind: strangerIP + ":0", Join: []string{gossipAddr},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(time.Second) })
	_, adminPort, _ := net.SplitHostPort(admin)
	_, webPort, _ := net.SplitHostPort(web)
	var targets []discovery.Target
	for i, addr := range []string{
		admin,                                   // the admin API itself
		"127.0.0.1:" + adminPort,                // through another loopback address
		net.JoinHostPort(strangerIP, adminPort), // through the stranger's own address
		net.JoinHostPort(strangerIP, webPort),   // the listener into itself
		"169.254.169.254:80",                    // a cloud's metadata service
	} {
		targets = append(targets, discovery.Target{ID: fmt.Sprintf("stranger/%012d/80", i), Node: "stranger", Groups: []string{"pwn"},
			Address: addr, Weight: 1, Rules: []discovery.Rule{{Listener: "web", Priority: i + 1, Paths: []string{"/api/v1/*"}, Group: "pwn"}}})
	}
	// Published until the agent sees the stranger as a member, then once more.
	deadline := time.Now().Add(10 * time.Second)
	for len(a.agent.Nodes()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.Publish(targets, "")
	time.Sleep(time.Second) // deltas, then the pull's full state

	resp, err := http.Get(a.url + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), `"listeners"`) {
		t.Fatalf("the public listener answers %d %q: a stranger's target is routed", resp.StatusCode, body)
	}
	for _, tg := range a.agent.Targets() {
		if tg.Node == "stranger" {
			t.Errorf("a stranger's target is routed: %+v", tg)
		}
	}
}
