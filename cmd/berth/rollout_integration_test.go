package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/berth-lb/berth/agent"
	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/freeport"
	"github.com/berth-lb/berth/internal/loadtest"
)

// composeFile is the service the acceptance tests roll out: the example app,
// its version and health from the environment, labelled with a prefix unique
// to the test.
const composeFile = `services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1::8080"]
    environment:
      VERSION: ${VERSION:-v1}
      HEALTH_STATUS: ${HEALTH_STATUS:-200}
      EXIT_ON_SIGTERM: ${EXIT_ON_SIGTERM:-0}
    labels:
      - "${PREFIX}.group=web"
    stop_grace_period: 30s
`

// project is a compose project and an agent watching it, all on loopback.
type project struct {
	t    *testing.T
	name string
	dir  string // holds compose.yaml
	env  []string
	// service is what berth rollout rolls out.
	service string
	url     string // the agent's web listener
	admin   string
	// tokenFile is the agent's admin.token-file.
	tokenFile string
	docker    *client.Client
	compose   []string
}

// composeFlavors are the compose programs berth rollout is tested with;
// scripts/ensure-compose.sh installs both.
var composeFlavors = []struct {
	name    string
	command []string
}{
	{"compose-v2", []string{"docker", "compose"}},
	{"docker-compose-v1", []string{"docker-compose"}},
}

// defaultCompose is the compose berth rollout finds by itself.
func defaultCompose(t *testing.T) []string {
	compose, err := composeCommand()
	if err != nil {
		t.Fatal(err)
	}
	return compose
}

// newProject starts an agent in-process and a compose project with three
// replicas of the example app with the given environment, driven by the
// compose program given.
func newProject(t *testing.T, compose []string, env ...string) *project {
	t.Helper()
	if out, err := exec.Command(compose[0], append(compose[1:], "version")...).CombinedOutput(); err != nil {
		t.Fatalf("%s does not run here (scripts/ensure-compose.sh installs it; make test runs that): %v\n%s", strings.Join(compose, " "), err, out)
	}
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/examples/app")
	suffix := make([]byte, 4)
	rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	p := &project{t: t, name: "berthtest" + id, dir: t.TempDir(), service: "web", docker: cli, compose: compose,
		env: append([]string{"IMAGE=" + image, "PREFIX=berthroll" + id, "BERTH_COMPOSE=" + strings.Join(compose, " ")}, env...)}
	p.writeComposeFile("")
	web := freeport.TCP(t)
	p.url, p.admin = "http://"+web, freeport.TCP(t)
	// The agent wants a token: the rollout must send it.
	p.tokenFile = writeTokenFile(t, cliToken)
	cfgFile := filepath.Join(p.dir, "berth.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`node: {name: test, advertise: 127.0.0.1}
docker: {label-prefix: berthroll%s, resync: 5s}
cluster: {enabled: false}
admin: {listen: %s, token-file: %s, metrics-public: true}
listeners:
  - name: web
    protocol: http
    address: %s
    default: {forward: web}
groups:
  web:
    deregistration-delay: 30s
    health: {path: /health, interval: 2s, timeout: 1s, healthy: 2, unhealthy: 2, matcher: "200"}
`, id, p.admin, p.tokenFile, web)), 0o644)
	cfg, err := config.Load(cfgFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Options{Config: cfg, Version: "test", Ready: ready,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent: %v", err)
	}
	t.Cleanup(func() {
		p.down()
		cancel()
		<-done
	})
	p.composeRun("up", "-d", "--scale", "web=3")
	dockertest.Eventually(t, 30*time.Second, func() bool { return len(p.answers(12)) == 3 }, "the three replicas do not all serve")
	return p
}

// writeComposeFile writes composeFile with extra keys for the web service.
func (p *project) writeComposeFile(extra string) {
	p.t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, "compose.yaml"), []byte(composeFile+extra), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// down removes the project and whatever compose missed of it: every
// container of the project, by ID.
func (p *project) down() {
	p.composeRun("down", "-v", "--remove-orphans", "-t", "1")
	list, _ := p.docker.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+p.name))})
	for _, c := range list {
		p.docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	}
}

func (p *project) composeRun(args ...string) {
	p.t.Helper()
	full := append(append(append([]string(nil), p.compose[1:]...), "-f", filepath.Join(p.dir, "compose.yaml"), "-p", p.name), args...)
	cmd := exec.Command(p.compose[0], full...)
	cmd.Env = append(os.Environ(), p.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// answers returns the bodies' first lines ("<name> <version>") of n requests.
func (p *project) answers(n int) map[string]int {
	seen := map[string]int{}
	c := &http.Client{Timeout: 5 * time.Second}
	for range n {
		resp, err := c.Get(p.url + "/")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			seen[strings.TrimSpace(string(body))]++
		}
	}
	return seen
}

// rollout runs `berth rollout SERVICE` with extra environment, as a user
// would; the environment is t's, so that it ends with t.
func (p *project) rollout(t *testing.T, env ...string) (string, error) {
	for _, kv := range append(append([]string(nil), p.env...), env...) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	args := []string{"-f", filepath.Join(p.dir, "compose.yaml"), "-p", p.name, "--admin", p.admin, "--timeout", "30s"}
	if p.tokenFile != "" {
		args = append(args, "--token-file", p.tokenFile)
	}
	err := runRollout(append(args, p.service), &out, io.Discard)
	return out.String(), err
}

func versions(answers map[string]int) map[string]int {
	out := map[string]int{}
	for a, n := range answers {
		fields := strings.Fields(a)
		out[fields[len(fields)-1]] += n
	}
	return out
}

func TestAnUnhealthyReplicaLeavesAndReturns(t *testing.T) {
	p := newProject(t, defaultCompose(t))
	list, _ := p.docker.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+p.name))})
	sick := list[0]
	port := dockertest.HostPort(t, p.docker, sick.ID, "8080/tcp")
	name := hostnameOf(t, p.docker, sick.ID)
	get := func(path string) {
		resp, err := http.Get("http://127.0.0.1:" + port + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get("/health/set?code=503")
	turned := time.Now()
	// interval 2s x unhealthy 2, and one interval of slack for the phase.
	dockertest.Eventually(t, 6*time.Second+time.Second, func() bool {
		return p.answers(9)[name+" v1"] == 0
	}, "the unhealthy replica still gets traffic")
	t.Logf("unhealthy replica out of rotation %v after it started failing", time.Since(turned).Round(100*time.Millisecond))
	get("/health/set?code=200")
	recovered := time.Now()
	dockertest.Eventually(t, 6*time.Second+time.Second, func() bool { return p.answers(9)[name+" v1"] > 0 }, "the recovered replica gets no traffic")
	t.Logf("recovered replica back %v after it passed again", time.Since(recovered).Round(100*time.Millisecond))
}

// TestAppExitingAtOnceOnSigterm measures an app that exits at once on
// SIGTERM, with POST requests (which a balancer never retries once sent),
// stopped with plain docker stop and replaced with berth rollout. The figures
// are in docs/rollout.md; the rollout must lose nothing.
func TestAppExitingAtOnceOnSigterm(t *testing.T) {
	p := newProject(t, defaultCompose(t), "EXIT_ON_SIGTERM=1")
	list, _ := p.docker.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+p.name))})

	load := loadtest.StartMethod(http.MethodPost, p.url+"/sleep?ms=50", 200)
	time.Sleep(time.Second)
	if err := p.docker.ContainerStop(context.Background(), list[0].ID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	plain := load.Stop()
	t.Logf("plain docker stop of an app that exits at once: %d ok, %d failed %v", plain.OK, plain.Failed, plain.Errors)
	p.composeRun("up", "-d", "--scale", "web=3")
	dockertest.Eventually(t, 30*time.Second, func() bool { return len(p.answers(12)) == 3 }, "the replicas do not all serve again")

	load = loadtest.StartMethod(http.MethodPost, p.url+"/sleep?ms=50", 200)
	time.Sleep(time.Second)
	out, err := p.rollout(t, "VERSION=v2")
	res := load.Stop()
	t.Logf("berth rollout of the same app: %d ok, %d failed", res.OK, res.Failed)
	if err != nil {
		t.Fatalf("rollout: %v\n%s", err, out)
	}
	if res.Failed != 0 {
		t.Fatalf("berth rollout lost %d requests of an app that exits at once on SIGTERM: %v\nrollout:\n%s\nbalancer errors:\n%s", res.Failed, res.Errors, out, p.balancerErrors())
	}
}

// balancerErrors returns the agent's non-zero balancer error counters.
func (p *project) balancerErrors() string {
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if (strings.HasPrefix(line, "berth_http_balancer_errors_total") || strings.HasPrefix(line, "berth_target_failures_total")) && !strings.HasSuffix(line, " 0") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func hostnameOf(t *testing.T, cli *client.Client, id string) string {
	info, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return info.Config.Hostname
}
