package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-lb/berth/discovery"
	"github.com/berth-lb/berth/discovery/docker"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/go-connections/nat"
)

// waitTimeout bounds every wait for a condition; container starts on a loaded CI
// machine can take seconds, and reconnection backs off up to 5s.
const waitTimeout = 30 * time.Second

// TestDockerIntegration runs the Watcher against the real Docker engine with
// containers of a FROM scratch image built from testdata/app.
func TestDockerIntegration(t *testing.T) {
	cli := dockerClient(t)
	imageTag := buildTestImage(t, cli)

	t.Run("lifecycle", func(t *testing.T) { testLifecycle(t, cli, imageTag) })
	t.Run("events stream cut", func(t *testing.T) { testStreamCut(t, cli, imageTag) })
}

func testLifecycle(t *testing.T, cli *client.Client, imageTag string) {
	prefix := "bt" + randomHex(t, 4)
	labels := map[string]string{prefix + ".group": "web"}
	var ids []string
	for range 3 {
		ids = append(ids, runContainer(t, cli, imageTag, labels, "8080"))
	}

	states := startWatcher(t, docker.Options{LabelPrefix: prefix})
	first := states.waitFor(t, "the 3 running containers as targets", 0, func(s discovery.State) bool {
		return hasTargets(s, ids...) && len(s.Targets) == 3
	})
	for _, id := range ids {
		target := findTarget(states.at(first), id)
		wantAddr := "127.0.0.1:" + hostPort(t, cli, id, "8080/tcp")
		if target.Address != wantAddr || !target.LocalOnly || target.Draining {
			t.Errorf("target of %s: address %s local-only %t draining %t; want %s, local-only, not draining",
				id[:12], target.Address, target.LocalOnly, target.Draining, wantAddr)
		}
		if want := "test-node/" + id[:12] + "/8080"; target.ID != want {
			t.Errorf("target ID %q, want %q", target.ID, want)
		}
		if len(target.Groups) != 1 || target.Groups[0] != "web" {
			t.Errorf("target groups %q, want [web]", target.Groups)
		}
		assertServes(t, target.Address)
	}

	fourth := runContainer(t, cli, imageTag, labels, "8080")
	added := states.waitFor(t, "the fourth container as a target", first, func(s discovery.State) bool {
		return hasTargets(s, append(ids, fourth)...) && len(s.Targets) == 4
	})
	assertServes(t, findTarget(states.at(added), fourth).Address)

	twoPorts := runContainer(t, cli, imageTag, labels, "8080", "9090")
	wantReason := fmt.Sprintf("several published ports (8080/tcp, 9090/tcp) and no %s.port label: set %s.port to the container port to route to", prefix, prefix)
	states.waitFor(t, "the two-port container skipped", added, func(s discovery.State) bool {
		for _, skipped := range s.Skipped {
			if skipped.ContainerID == twoPorts {
				return skipped.Reason == wantReason
			}
		}
		return false
	})

	stopped := ids[1]
	stopCtx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stopDone := make(chan error, 1)
	go func() { stopDone <- cli.ContainerStop(stopCtx, stopped, container.StopOptions{}) }()
	draining := states.waitFor(t, "the stopped container draining", added, func(s discovery.State) bool {
		target := findTarget(s, stopped)
		return target != nil && target.Draining
	})
	states.waitFor(t, "the stopped container removed", draining, func(s discovery.State) bool {
		return findTarget(s, stopped) == nil && hasTargets(s, ids[0], ids[2], fourth) && len(s.Targets) == 3
	})
	if err := <-stopDone; err != nil {
		t.Fatalf("stop container: %v", err)
	}
	stats := states.watcher.Stats()
	if !stats.Connected || stats.Events["start"] < 2 || stats.Events["kill"] < 1 || stats.Events["die"] < 1 || stats.LastSync.IsZero() {
		t.Errorf("stats %+v: want connected, synced, and start, kill and die events counted", stats)
	}
}

func testStreamCut(t *testing.T, cli *client.Client, imageTag string) {
	prefix := "bt" + randomHex(t, 4)
	labels := map[string]string{prefix + ".group": "web"}
	kept := runContainer(t, cli, imageTag, labels, "8080")
	stoppedWhileCut := runContainer(t, cli, imageTag, labels, "8080")
	// Still shutting down after the reconnection: only the replayed kill event can tell.
	killedWhileCut := runContainerStopDelay(t, cli, imageTag, labels, time.Minute, "8080")

	proxy := newSocketProxy(t, cli.DaemonHost())
	// A long resync proves that recovery comes from the reconnection, not from the timer.
	states := startWatcher(t, docker.Options{LabelPrefix: prefix, Host: "unix://" + proxy.path, Resync: time.Hour})
	before := states.waitFor(t, "both containers as targets", 0, func(s discovery.State) bool {
		return hasTargets(s, kept, stoppedWhileCut, killedWhileCut) && len(s.Targets) == 3
	})

	proxy.cut()
	waitUntil(t, "the watcher to see the connection lost", func() bool { return !states.watcher.Stats().Connected })
	startedWhileCut := runContainer(t, cli, imageTag, labels, "8080")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := cli.ContainerStop(ctx, stoppedWhileCut, container.StopOptions{}); err != nil {
		t.Fatalf("stop container: %v", err)
	}
	if err := cli.ContainerKill(ctx, killedWhileCut, "SIGTERM"); err != nil {
		t.Fatalf("kill container: %v", err)
	}
	proxy.restore()

	states.waitFor(t, "the kept and the new container serving, the killed one draining, the stopped one gone", before, func(s discovery.State) bool {
		return hasTargets(s, kept, startedWhileCut, killedWhileCut) && len(s.Targets) == 3 &&
			!findTarget(s, kept).Draining && !findTarget(s, startedWhileCut).Draining && findTarget(s, killedWhileCut).Draining
	})
	waitUntil(t, "the watcher connected again", func() bool { return states.watcher.Stats().Connected })
	if stats := states.watcher.Stats(); stats.Reconnects < 1 || stats.LastError == "" {
		t.Errorf("stats %+v: want at least one reconnect and the last error", stats)
	}
}

// dockerClient returns a client to the engine, skipping the test when none answers,
// unless on CI where a missing engine is a failure.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Docker engine answers at %s on CI: %v", cli.DaemonHost(), err)
		}
		t.Skipf("no Docker engine answers at %s: %v", cli.DaemonHost(), err)
	}
	return cli
}

// buildTestImage builds testdata/app statically into a FROM scratch image.
func buildTestImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "app")
	goBuild := exec.Command("go", "build", "-o", binary, "./testdata/app")
	goBuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := goBuild.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/app: %v\n%s", err, out)
	}
	program, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	var buildContext bytes.Buffer
	archive := tar.NewWriter(&buildContext)
	for _, file := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY app /app\nEXPOSE 8080\nENTRYPOINT [\"/app\"]\n")},
		{"app", 0o755, program},
	} {
		if err := archive.WriteHeader(&tar.Header{Name: file.name, Mode: file.mode, Size: int64(len(file.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := archive.Write(file.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := archive.Close(); err != nil {
		t.Fatal(err)
	}

	tag := "berth-discovery-test:" + randomHex(t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &buildContext, build.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	err = jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	inspected, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("inspect built image: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, inspected.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("remove image %s: %v", inspected.ID, err)
		}
	})
	return tag
}

// runContainer starts a container publishing each container port on 127.0.0.1 with
// a dynamic host port; it exits 1s after SIGTERM and is removed when the test ends.
func runContainer(t *testing.T, cli *client.Client, imageTag string, labels map[string]string, ports ...string) string {
	t.Helper()
	return runContainerStopDelay(t, cli, imageTag, labels, time.Second, ports...)
}

func runContainerStopDelay(t *testing.T, cli *client.Client, imageTag string, labels map[string]string, stopDelay time.Duration, ports ...string) string {
	t.Helper()
	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, p := range ports {
		port := nat.Port(p + "/tcp")
		exposed[port] = struct{}{}
		bindings[port] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: ""}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	created, err := cli.ContainerCreate(ctx,
		&container.Config{Image: imageTag, Labels: labels, ExposedPorts: exposed, Env: []string{"STOP_DELAY=" + stopDelay.String()}},
		&container.HostConfig{PortBindings: bindings}, nil, nil, "")
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("remove container %s: %v", created.ID[:12], err)
		}
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	return created.ID
}

func hostPort(t *testing.T, cli *client.Client, id string, port nat.Port) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	inspected, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspect container: %v", err)
	}
	bindings := inspected.NetworkSettings.Ports[port]
	if len(bindings) == 0 {
		t.Fatalf("container %s: port %s not published", id[:12], port)
	}
	return bindings[0].HostPort
}

func assertServes(t *testing.T, address string) {
	t.Helper()
	httpClient := &http.Client{Timeout: 5 * time.Second}
	var lastErr error
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		resp, err := httpClient.Get("http://" + address + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET http://%s/: %v", address, lastErr)
}

// watchedStates runs a Watcher and records every state it emits.
type watchedStates struct {
	watcher *docker.Watcher
	mu      sync.Mutex
	states  []discovery.State
}

func startWatcher(t *testing.T, opts docker.Options) *watchedStates {
	t.Helper()
	opts.Node = "test-node"
	opts.Advertise = "127.0.0.1"
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	watcher, err := docker.New(opts)
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	w := &watchedStates{watcher: watcher}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan discovery.State)
	runDone := make(chan error, 1)
	go func() { runDone <- watcher.Run(ctx, out) }()
	go func() {
		for state := range out {
			w.mu.Lock()
			w.states = append(w.states, state)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
		close(out)
	})
	return w
}

func (w *watchedStates) at(index int) discovery.State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.states[index]
}

// waitFor returns the index of the first state at or after from that satisfies cond.
func (w *watchedStates) waitFor(t *testing.T, what string, from int, cond func(discovery.State) bool) int {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		w.mu.Lock()
		states := w.states
		w.mu.Unlock()
		for i := from; i < len(states); i++ {
			if cond(states[i]) {
				return i
			}
		}
		if time.Now().After(deadline) {
			last := "no state emitted"
			if len(states) > 0 {
				last = fmt.Sprintf("%+v", states[len(states)-1])
			}
			t.Fatalf("waiting for %s: not seen within %s; last state: %s", what, waitTimeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not seen within %s", what, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findTarget(s discovery.State, containerID string) *discovery.Target {
	for i := range s.Targets {
		if s.Targets[i].ContainerID == containerID {
			return &s.Targets[i]
		}
	}
	return nil
}

// hasTargets reports whether every container has exactly one target.
func hasTargets(s discovery.State, containerIDs ...string) bool {
	for _, id := range containerIDs {
		count := 0
		for _, target := range s.Targets {
			if target.ContainerID == id {
				count++
			}
		}
		if count != 1 {
			return false
		}
	}
	return true
}

// socketProxy forwards a unix socket to the Docker daemon and can cut every
// connection, refusing new ones until restored.
type socketProxy struct {
	path     string
	listener net.Listener
	dial     func() (net.Conn, error)

	mu     sync.Mutex
	cutOff bool
	conns  map[net.Conn]struct{}
}

func newSocketProxy(t *testing.T, daemonHost string) *socketProxy {
	t.Helper()
	daemon, err := client.ParseHostURL(daemonHost)
	if err != nil {
		t.Fatalf("parse daemon host %q: %v", daemonHost, err)
	}
	network, address := daemon.Scheme, daemon.Host
	// A short directory: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "bdp")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "docker.sock")
	listener, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	p := &socketProxy{
		path:     path,
		listener: listener,
		dial:     func() (net.Conn, error) { return net.Dial(network, address) },
		conns:    map[net.Conn]struct{}{},
	}
	done := make(chan struct{})
	go p.serve(done)
	t.Cleanup(func() {
		listener.Close()
		<-done
		p.cut()
		os.RemoveAll(dir)
	})
	return p
}

func (p *socketProxy) serve(done chan<- struct{}) {
	defer close(done)
	for {
		conn, err := p.listener.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cutOff {
			p.mu.Unlock()
			conn.Close()
			continue
		}
		p.conns[conn] = struct{}{}
		p.mu.Unlock()
		go p.forward(conn)
	}
}

func (p *socketProxy) forward(conn net.Conn) {
	defer p.drop(conn)
	upstream, err := p.dial()
	if err != nil {
		return
	}
	defer upstream.Close()
	p.mu.Lock()
	if p.cutOff {
		p.mu.Unlock()
		return
	}
	p.conns[upstream] = struct{}{}
	p.mu.Unlock()
	defer p.drop(upstream)
	copied := make(chan struct{}, 2)
	go func() { io.Copy(upstream, conn); copied <- struct{}{} }()
	go func() { io.Copy(conn, upstream); copied <- struct{}{} }()
	<-copied
}

func (p *socketProxy) drop(conn net.Conn) {
	conn.Close()
	p.mu.Lock()
	delete(p.conns, conn)
	p.mu.Unlock()
}

// cut closes every connection and refuses new ones until restore.
func (p *socketProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = true
	for conn := range p.conns {
		conn.Close()
	}
}

func (p *socketProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = false
}

func randomHex(t *testing.T, bytes int) string {
	t.Helper()
	b := make([]byte, bytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testWriter sends the watcher's log lines to the test log, shown on failure or -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
