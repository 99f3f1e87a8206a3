package dockerproxy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/berth-lb/berth/discovery"
	"github.com/berth-lb/berth/discovery/docker"
	"github.com/berth-lb/berth/dockerproxy"
	"github.com/berth-lb/berth/internal/dockertest"
)

const waitTimeout = 30 * time.Second

// startProxy serves the proxy of the test's Docker engine on a unix socket
// and answers the socket's path.
func startProxy(t *testing.T, cli *client.Client) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	handler, err := dockerproxy.Handler(cli.DaemonHost(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := dockerproxy.Listen("unix://"+path, cli.DaemonHost())
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: handler}
	go server.Serve(ln)
	t.Cleanup(func() { server.Close() })
	return path
}

func randomHex(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Discovery through the proxy sees what it sees on the socket itself: the
// first list (and inspect) of a running container, a container started later
// (event, inspect) and one stopped (events).
func TestDiscoveryThroughTheProxy(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/examples/app")
	sock := startProxy(t, cli)
	prefix := "bp" + randomHex(t)
	labels := map[string]string{prefix + ".group": "web"}
	first := dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labels, Ports: []string{"8080"}, StopTimeout: 1})

	// A resync of an hour: what follows the first list comes from events.
	w, err := docker.New(docker.Options{Host: "unix://" + sock, LabelPrefix: prefix, Node: "test", Advertise: "127.0.0.1", Resync: time.Hour,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	states, done := make(chan discovery.State, 64), make(chan error, 1)
	go func() { done <- w.Run(ctx, states) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	waitFor := func(what string, cond func(discovery.State) bool) {
		t.Helper()
		deadline := time.After(waitTimeout)
		for {
			select {
			case s := <-states:
				if cond(s) {
					return
				}
			case <-deadline:
				t.Fatalf("discovery through the proxy did not see %s within %s", what, waitTimeout)
			}
		}
	}
	serving := func(s discovery.State, id string) bool {
		for _, target := range s.Targets {
			if target.ContainerID == id && !target.Draining {
				return target.Address == "127.0.0.1:"+dockertest.HostPort(t, cli, id, "8080")
			}
		}
		return false
	}
	waitFor("the running container", func(s discovery.State) bool { return len(s.Targets) == 1 && serving(s, first) })

	second := dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Labels: labels, Ports: []string{"8080"}, StopTimeout: 1})
	waitFor("the started container", func(s discovery.State) bool { return len(s.Targets) == 2 && serving(s, first) && serving(s, second) })

	stopCtx, stopCancel := context.WithTimeout(context.Background(), waitTimeout)
	defer stopCancel()
	if err := cli.ContainerStop(stopCtx, first, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the stopped container leave", func(s discovery.State) bool { return len(s.Targets) == 1 && serving(s, second) })
	if stats := w.Stats(); !stats.Connected || stats.Events["start"] < 1 || stats.Events["die"] < 1 {
		t.Errorf("watcher stats %+v: want connected, and start and die events", stats)
	}
}

// Whatever an agent that is taken over sends through the proxy, the
// engine's containers stay as they are.
func TestWritesAreRefused(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/examples/app")
	sock := startProxy(t, cli)
	id := dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Ports: []string{"8080"}})
	before, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}

	// The Docker client, as an attacker would use it, through the proxy.
	proxied, err := client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer proxied.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := proxied.ContainerInspect(ctx, id); err != nil {
		t.Fatalf("inspect through the proxy: %v", err)
	}
	created, err := proxied.ContainerCreate(ctx, &container.Config{Image: image, Labels: map[string]string{"org.berth-lb.dockertest": "proxy"}}, nil, nil, nil, "")
	if err == nil {
		cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
		t.Fatal("a container was created through the proxy")
	}
	if !errdefs.IsForbidden(err) || !strings.Contains(err.Error(), "berth docker-proxy: POST /v") || !strings.Contains(err.Error(), "/containers/create is not allowed") {
		t.Errorf("create: %v; want a 403 that names POST .../containers/create", err)
	}
	if err := proxied.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); !errdefs.IsForbidden(err) {
		t.Errorf("remove: %v; want 403", err)
	}
	if err := proxied.ContainerKill(ctx, id, "SIGKILL"); !errdefs.IsForbidden(err) {
		t.Errorf("kill: %v; want 403", err)
	}

	// Raw requests: other methods, other GETs that read too much, and paths
	// that would lead elsewhere once the engine cleans or decodes them.
	raw := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: waitTimeout}
	tests := []struct{ method, path string }{
		{"DELETE", "/containers/" + id + "?force=1"},
		{"POST", "/v1.41/containers/" + id + "/stop"},
		{"POST", "/containers/" + id + "/exec"},
		{"PUT", "/containers/" + id + "/archive?path=/"},
		{"POST", "/_ping"},
		{"GET", "/containers/" + id + "/logs?stdout=1"},
		{"GET", "/containers/" + id + "/export"},
		{"GET", "/info"},
		{"GET", "/images/json"},
		{"GET", "/containers/" + id + "/../" + id + "/logs?stdout=1"},
		{"GET", "/containers/x%2F..%2F" + id + "/json"},
		{"GET", "/v1.41/containers/json/../../containers/" + id + "/logs"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://docker"+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = strings.SplitN(tt.path, "?", 2)[0] // sent as written, not cleaned
			resp, err := raw.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var answer struct{ Message string }
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusForbidden || json.Unmarshal(body, &answer) != nil || !strings.Contains(answer.Message, "is not allowed") {
				t.Errorf("answer %d %q, want 403 with a JSON message", resp.StatusCode, body)
			}
		})
	}

	after, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatalf("the container is gone: %v", err)
	}
	if !after.State.Running || after.State.StartedAt != before.State.StartedAt || after.State.Pid != before.State.Pid {
		t.Errorf("the container changed: running %t, started %s (was %s), pid %d (was %d)", after.State.Running, after.State.StartedAt, before.State.StartedAt, after.State.Pid, before.State.Pid)
	}
}

func TestListenRefusesTCPBeyondLoopback(t *testing.T) {
	for _, address := range []string{"tcp://0.0.0.0:2375", "tcp://:2375", "tcp://10.0.0.5:2375", "tcp://docker.example:2375"} {
		if _, err := dockerproxy.Listen(address, ""); err == nil || !strings.Contains(err.Error(), "listen on a unix socket or on loopback") {
			t.Errorf("Listen(%s): %v, want a refusal", address, err)
		}
	}
	if _, err := dockerproxy.Listen("/run/berth/docker.sock", ""); err == nil || !strings.Contains(err.Error(), "want unix:///PATH or tcp://HOST:PORT") {
		t.Errorf("Listen of a bare path: %v, want the forms", err)
	}
}
