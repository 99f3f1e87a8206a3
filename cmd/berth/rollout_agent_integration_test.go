package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/freeport"
	"github.com/berth-lb/berth/internal/loadtest"
)

// agentComposeFile runs the agent as deploy/compose.yaml does: host
// network, a restart policy, the control socket on a volume the old and the
// new container share. AGENT_VERSION changes its definition for a rollout;
// UPGRADE_SOCKET can make a new agent miss its predecessor.
const agentComposeFile = `services:
  agent:
    image: ${IMAGE}
    network_mode: host
    restart: unless-stopped
    labels:
      org.berth-lb.agent: "true"
    environment:
      AGENT_VERSION: ${AGENT_VERSION:-v1}
      BERTH_UPGRADE_SOCKET: ${UPGRADE_SOCKET:-/run/berth/upgrade.sock}
    volumes:
      - ./berth.yaml:/etc/berth/berth.yaml:ro
      - upgrade:/run/berth
    command: ["agent", "--config", "/etc/berth/berth.yaml"]
    stop_grace_period: 35s
volumes:
  upgrade:
`

// newAgentProject starts a compose project whose one service, agent, is
// the berth agent itself, serving a backend of the test on loopback.
func newAgentProject(t *testing.T) *project {
	t.Helper()
	compose := defaultCompose(t)
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/cmd/berth")
	suffix := make([]byte, 4)
	rand.Read(suffix)
	web := freeport.TCP(t)
	p := &project{t: t, name: "berthagent" + hex.EncodeToString(suffix), dir: t.TempDir(), service: "agent",
		url: "http://" + web, admin: freeport.TCP(t), docker: cli, compose: compose,
		env: []string{"IMAGE=" + image, "BERTH_COMPOSE=" + strings.Join(compose, " ")}}
	os.WriteFile(filepath.Join(p.dir, "compose.yaml"), []byte(agentComposeFile), 0o644)
	os.WriteFile(filepath.Join(p.dir, "berth.yaml"), []byte(fmt.Sprintf(`node: {name: test-agent, advertise: 127.0.0.1}
docker: {enabled: false}
cluster: {enabled: false}
admin: {listen: %s}
listeners:
  - {name: web, protocol: http, address: %s, default: {forward: web}}
static:
  web: [%s]
`, p.admin, web, serveBackend(t))), 0o644)
	t.Cleanup(p.down)
	p.composeRun("up", "-d")
	dockertest.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(p.url + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the agent does not serve")
	return p
}

// agents returns the project's agent containers, inspected.
func (p *project) agents() []container.InspectResponse {
	p.t.Helper()
	list, err := p.docker.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+p.name))})
	if err != nil {
		p.t.Fatal(err)
	}
	var out []container.InspectResponse
	for _, c := range list {
		info, err := p.docker.ContainerInspect(context.Background(), c.ID)
		if err != nil {
			p.t.Fatal(err)
		}
		out = append(out, info)
	}
	return out
}

func envOf(info container.InspectResponse, key string) string {
	for _, kv := range info.Config.Env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// TestRolloutOfTheAgentItself: berth rollout of the agent's own compose
// service starts the new agent first, which takes the listening sockets over
// from the old one; the old one drains and exits, and no request of a steady
// load fails. A new agent that cannot take over is rolled back, and the old
// one keeps serving with its restart policy as it was.
func TestRolloutOfTheAgentItself(t *testing.T) {
	p := newAgentProject(t)
	out, res, err := p.rolloutUnderLoad(t, "AGENT_VERSION=v2")
	if err != nil {
		t.Fatalf("rollout: %v\n%s", err, out)
	}
	if res.Failed > 0 {
		t.Fatalf("%d requests failed while the agent rolled out: %v", res.Failed, res.Errors)
	}
	p.requireOneAgent("v2")

	t.Run("a new agent that cannot take over is rolled back", func(t *testing.T) {
		// It misses its predecessor's socket, so it binds the ports the old
		// one holds, fails and exits.
		out, res, err := p.rolloutUnderLoad(t, "AGENT_VERSION=v3", "UPGRADE_SOCKET=/run/berth/elsewhere.sock")
		if err == nil || !strings.Contains(err.Error(), "rolled back") {
			t.Fatalf("rollout = %v, want a roll back\n%s", err, out)
		}
		if res.Failed > 0 {
			t.Fatalf("%d requests failed while the rollout rolled back: %v", res.Failed, res.Errors)
		}
		if policy := p.requireOneAgent("v2").HostConfig.RestartPolicy.Name; policy != container.RestartPolicyUnlessStopped {
			t.Fatalf("the old agent's restart policy is %q after the roll back, want unless-stopped", policy)
		}
	})
}

// rolloutUnderLoad runs `berth rollout agent` in the middle of a steady
// load, a second of it on either side.
func (p *project) rolloutUnderLoad(t *testing.T, env ...string) (string, loadtest.Result, error) {
	load := loadtest.Start(p.url+"/", 200)
	time.Sleep(time.Second)
	out, err := p.rollout(t, env...)
	time.Sleep(time.Second)
	res := load.Stop()
	t.Logf("berth rollout of the agent (%s): %d answered, %d failed\n%s", strings.Join(env, " "), res.OK, res.Failed, out)
	return out, res, err
}

// requireOneAgent fails the test unless the project has exactly one agent
// container, running the given AGENT_VERSION, and returns it.
func (p *project) requireOneAgent(version string) container.InspectResponse {
	p.t.Helper()
	agents := p.agents()
	if len(agents) != 1 || !agents[0].State.Running || envOf(agents[0], "AGENT_VERSION") != version {
		p.t.Fatalf("%d agent container(s), want one running %s", len(agents), version)
	}
	return agents[0]
}
