package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/freeport"
	"github.com/berth-lb/berth/internal/loadtest"
)

// runningAgent is an agent started in-process by a test on loopback addresses.
type runningAgent struct {
	agent *Agent
	url   string // the "web" listener
	file  string // the config file it watches
	// stop shuts the agent down gracefully; the test's end calls it too.
	stop func()
	// exited receives run's result when the agent stops; a test that reads
	// it sends it back, for stop.
	exited chan error
}

// startAgent runs an agent that reads containers labelled with a prefix unique
// to this test, so containers of other tests or of the demo never interfere.
func startAgent(t *testing.T) (*runningAgent, string) {
	t.Helper()
	prefix := labelPrefix()
	web := freeport.TCP(t)
	return startAgentWith(t, web, labelAgentConfig(prefix, "{listen: "+freeport.TCP(t)+"}", web, "")), prefix
}

// labelPrefix is a label prefix no other test uses.
func labelPrefix() string {
	suffix := make([]byte, 4)
	rand.Read(suffix)
	return "berthtest" + hex.EncodeToString(suffix)
}

// labelAgentConfig is the config of node "test", which reads the containers
// labelled with prefix, has the admin section admin (YAML), and a "web"
// listener on webAddr that forwards to group web; moreGroups (YAML lines)
// follow group web.
func labelAgentConfig(prefix, admin, webAddr, moreGroups string) string {
	return fmt.Sprintf(`node: {name: test, advertise: 127.0.0.1}
docker: {label-prefix: %s, resync: 5s}
cluster: {enabled: false}
admin: %s
listeners:
  - name: web
    protocol: http
    address: %s
    default: {forward: web}
groups:
  web: {deregistration-delay: 30s}
%s`, prefix, admin, webAddr, moreGroups)
}

// startAgentWith runs an agent in-process on the config text, whose "web"
// listener is on webAddr, and stops it at the end of the test.
func startAgentWith(t *testing.T, webAddr, yaml string) *runningAgent {
	t.Helper()
	file := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	ra := &runningAgent{url: "http://" + webAddr, file: file, exited: done}
	agentCh := make(chan *Agent, 1)
	go func() {
		done <- run(ctx, Options{Config: cfg, ConfigPath: file, Version: "test", Ready: ready,
			Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))}, agentCh)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready within 30s")
	}
	ra.agent = <-agentCh
	var once sync.Once
	ra.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent shutdown: %v", err)
			}
		})
	}
	t.Cleanup(ra.stop)
	return ra
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func labelled(prefix string, extra ...string) map[string]string {
	l := map[string]string{prefix + ".group": "web"}
	for i := 0; i+1 < len(extra); i += 2 {
		l[prefix+"."+extra[i]] = extra[i+1]
	}
	return l
}

// answerers returns the set of bodies (container names) seen in n requests.
func answerers(client *http.Client, url string, n int) map[string]int {
	seen := map[string]int{}
	for range n {
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			seen[strings.Fields(string(body))[0]]++
		}
	}
	return seen
}

func hostname(t *testing.T, cli *client.Client, id string) string {
	t.Helper()
	info, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return info.Config.Hostname
}

func TestDockerEndToEnd(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/examples/app")
	ra, prefix := startAgent(t)
	httpc := &http.Client{Timeout: 10 * time.Second}

	var ids []string
	for range 3 {
		ids = append(ids, dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labelled(prefix), Ports: []string{"8080/tcp"}, StopTimeout: 30}))
	}
	names := map[string]bool{}
	for _, id := range ids {
		names[hostname(t, cli, id)] = true
	}
	dockertest.Eventually(t, 15*time.Second, func() bool {
		seen := answerers(httpc, ra.url+"/", 12)
		return len(seen) == 3 && names[firstKey(seen)]
	}, "three labelled containers do not all receive traffic")

	t.Run("a container started later receives traffic", func(t *testing.T) {
		id := dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labelled(prefix), Ports: []string{"8080/tcp"}, StopTimeout: 30})
		ids = append(ids, id)
		fourth := hostname(t, cli, id)
		started := time.Now()
		dockertest.Eventually(t, 10*time.Second, func() bool { return answerers(httpc, ra.url+"/", 8)[fourth] > 0 }, "the fourth container gets no traffic")
		t.Logf("fourth container served after %v", time.Since(started).Round(time.Millisecond))
	})

	t.Run("two published ports and no port label are skipped with the reason", func(t *testing.T) {
		id := dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labelled(prefix), Ports: []string{"8080/tcp", "9090/tcp"}})
		dockertest.Eventually(t, 10*time.Second, func() bool {
			for _, s := range ra.agent.Status().Skipped {
				if s.Container == id && strings.Contains(s.Reason, "8080/tcp") && strings.Contains(s.Reason, "9090/tcp") && strings.Contains(s.Reason, prefix+".port") {
					return true
				}
			}
			return false
		}, "the container with two ports is not reported as skipped: %+v", ra.agent.Status().Skipped)
		for _, tg := range ra.agent.Targets() {
			if strings.Contains(tg.ID, id[:12]) {
				t.Fatalf("the container with two ports was registered as %s", tg.ID)
			}
		}
		scrape := get(t, strings.Replace(ra.url, ra.url, "http://"+ra.agent.opts.Config.Admin.Listen, 1)+"/metrics")
		if !strings.Contains(scrape, "berth_docker_skipped_containers 1") {
			t.Fatalf("metric berth_docker_skipped_containers is not 1")
		}
	})

	t.Run("a rule declared by labels routes to its group", func(t *testing.T) {
		labels := map[string]string{prefix + ".group": "api", prefix + ".rule.path": "/api/*", prefix + ".rule.priority": "10"}
		id := dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labels, Ports: []string{"8080/tcp"}, StopTimeout: 30})
		api := hostname(t, cli, id)
		// The example app answers 404 for /api/..., with its name in no body:
		// the access shows in the target's request counter.
		dockertest.Eventually(t, 10*time.Second, func() bool {
			status(ra.url + "/api/users")
			for _, tg := range ra.agent.Targets() {
				if tg.Group == "api" && tg.Container != "" && tg.Requests > 0 {
					return true
				}
			}
			return false
		}, "requests to /api/* do not reach the api group (container %s)", api)
		for _, tg := range ra.agent.Targets() {
			if tg.Group == "web" && strings.Contains(tg.ID, id[:12]) {
				t.Fatal("the api container joined the web group")
			}
		}
		if seen := answerers(httpc, ra.url+"/", 8); seen[api] > 0 {
			t.Fatal("requests outside /api/* reached the api group")
		}
	})

	t.Run("a path rule without a priority is registered and routed", func(t *testing.T) {
		labels := map[string]string{prefix + ".group": "app", prefix + ".rule.path": "/app/*"}
		id := dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labels, Ports: []string{"8080/tcp"}, StopTimeout: 30})
		// The example app answers 404 for /app/..., so the access shows in the
		// target's request counter.
		dockertest.Eventually(t, 10*time.Second, func() bool {
			status(ra.url + "/app/x")
			for _, tg := range ra.agent.Targets() {
				if tg.Group == "app" && strings.Contains(tg.ID, id[:12]) && tg.Requests > 0 {
					return true
				}
			}
			return false
		}, "requests to /app/* do not reach the container whose rule has no priority: targets %+v, skipped %+v", ra.agent.Targets(), ra.agent.Status().Skipped)
		var rule *api.Rule
		for _, l := range ra.agent.Status().Listeners {
			for i, r := range l.Rules {
				if slices.Equal(r.Paths, []string{"/app/*"}) {
					rule = &l.Rules[i]
				}
			}
		}
		if rule == nil || rule.Priority <= 50000 || rule.Source != "labels" {
			t.Fatalf("the rule /app/* is %+v, want it from labels after every numbered priority", rule)
		}
	})

	t.Run("a bad rule label leaves out the rule, not the container", func(t *testing.T) {
		labels := map[string]string{prefix + ".group": "web", prefix + ".rule.path": "app/*"}
		id := dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labels, Ports: []string{"8080/tcp"}, StopTimeout: 30})
		ids = append(ids, id)
		name := hostname(t, cli, id)
		dockertest.Eventually(t, 10*time.Second, func() bool { return answerers(httpc, ra.url+"/", 12)[name] > 0 }, "the container with a bad rule label gets no traffic")
		problems := ra.agent.Status().LabelProblems
		if len(problems) != 1 || problems[0].Container != id || !strings.Contains(problems[0].Reason, prefix+`.rule.path="app/*"`) {
			t.Fatalf("label problems %+v, want the bad rule.path of %s", problems, id)
		}
		scrape := get(t, "http://"+ra.agent.opts.Config.Admin.Listen+"/metrics")
		if !strings.Contains(scrape, "berth_docker_label_problem_containers 1") {
			t.Fatalf("metric berth_docker_label_problem_containers is not 1")
		}
	})

	t.Run("docker stop under load fails no request", func(t *testing.T) {
		victim := ids[0]
		name := hostname(t, cli, victim)
		load := loadtest.Start(ra.url+"/sleep?ms=20", 200)
		time.Sleep(time.Second) // a steady state before the stop, as in production
		if err := cli.ContainerStop(context.Background(), victim, container.StopOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		res := load.Stop()
		ok, failed, errs := res.OK, res.Failed, res.Errors
		t.Logf("load: %d ok, %d failed", ok, failed)
		if failed != 0 || ok < 800 {
			t.Fatalf("%d requests failed (%d ok); first errors: %v", failed, ok, errs)
		}
		dockertest.Eventually(t, 5*time.Second, func() bool {
			for _, tg := range ra.agent.Targets() {
				if tg.Container == name || strings.Contains(tg.ID, victim[:12]) {
					return false
				}
			}
			return true
		}, "the stopped container is still a target")
		if answerers(httpc, ra.url+"/", 12)[name] > 0 {
			t.Fatal("the stopped container still answers")
		}
	})
}

func firstKey(m map[string]int) string {
	for k := range m {
		return k
	}
	return ""
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
