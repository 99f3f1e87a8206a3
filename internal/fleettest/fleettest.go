// Package fleettest simulates a fleet of Docker hosts on one Linux machine for
// end-to-end tests of berth's fleet layer.
//
// Each simulated host is a network namespace with its own dockerd and its own
// berth agent. The hosts are wired to a "switch": a Linux bridge in a network
// namespace of its own, so no test traffic touches the networks of the root
// namespace. The test process lives in the root namespace and cannot reach the
// hosts; it sends requests with the loadclient command run (with nsenter)
// inside a host's namespace.
//
// Everything a fleet creates carries its run ID (namespaces berth-<id>-h<i>,
// the directory berth-fleet-<id> under the temp dir, cgroups berth-<id>-h<i>),
// and is removed when the test ends, also on failure or panic. A run killed
// before its cleanup is swept by the next one, once its processes are gone.
//
// The harness needs root, ip (iproute2), nsenter, dockerd and containerd, and
// the machine's Docker engine to build the app image; see Require.
package fleettest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/fleettest/loadreport"
)

// Label is set, with the run ID as value, on every container the harness runs.
const Label = "org.berth-lb.fleettest"

// Ports every simulated host's agent listens on, at the host's address.
const (
	BalancerPort = 8000
	AdminPort    = 9900
	GossipPort   = 7946
)

const (
	namePrefix = "berth-"
	// dirPrefix names the run directory under os.TempDir(); kept short because
	// the daemons' unix socket paths must stay under 108 bytes.
	dirPrefix = "berth-fleet-"
	// ownerFile in the run directory holds the PID of the test process that
	// owns the run, so a sweep never removes a live run's namespaces.
	ownerFile = "owner.pid"
	// runIDBytes is the size of the random run ID; it is kept short because it
	// is part of interface names, limited to 15 bytes.
	runIDBytes = 3

	appPackage    = "github.com/berth-lb/berth/examples/app"
	berthPackage  = "github.com/berth-lb/berth/cmd/berth"
	clientPackage = "github.com/berth-lb/berth/internal/fleettest/loadclient"

	buildTimeout   = 5 * time.Minute
	startTimeout   = 30 * time.Second
	apiTimeout     = 30 * time.Second
	stopTimeout    = 15 * time.Second
	commandTimeout = 30 * time.Second
	pollInterval   = 50 * time.Millisecond
	// logTail is how many lines of a daemon's or agent's log a failed test shows.
	logTail = 30
)

// Fleet is a set of simulated hosts on one switch.
type Fleet struct {
	// RunID is unique to this fleet and part of every name it creates.
	RunID string
	// Hosts are the simulated hosts; Hosts[0] is host 1.
	Hosts []*Host

	t          testing.TB
	dir        string
	subnet     int // the third byte of the hosts' addresses 10.213.<subnet>.x
	switchNS   string
	berth      string // path of the berth binary
	loadClient string // path of the loadclient binary
	appImage   string
}

// Host is one simulated Docker host.
type Host struct {
	// Index is the host's number, from 1.
	Index int
	// Name is the node name, "h<Index>".
	Name string
	// Namespace is the network namespace, "berth-<run-id>-h<Index>".
	Namespace string
	// IP is the host's address on the switch, also its node.advertise.
	IP string
	// Docker is a client of the host's own dockerd.
	Docker *client.Client

	dir        string
	dockerSock string
	dockerd    *process
	agent      *process

	mu       sync.Mutex
	replicas int // numbers the app containers of the host
}

// process is a long-running child (dockerd or an agent) and its log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	// exited is closed when the process has ended; err is then set.
	exited chan struct{}
	err    error
}

// Require skips the test when the machine cannot simulate hosts (not root, or
// ip, nsenter, dockerd or containerd missing), except in CI (CI=true), where a
// missing prerequisite fails the test: a CI machine must run the fleet test.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root privileges")
	}
	for _, tool := range []string{"ip", "nsenter", "dockerd", "containerd"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("fleettest: the fleet test needs %s (run it as root on a machine with iproute2, util-linux and Docker installed)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// New starts a fleet of n hosts: the switch, then on each host a dockerd with
// the example app image loaded and a berth agent. It returns once every
// daemon and every agent answers. Everything is removed when the test ends.
func New(t testing.TB, n int) *Fleet {
	t.Helper()
	Require(t)
	started := time.Now()
	SweepStale(t)
	main := dockertest.Client(t)

	random := make([]byte, runIDBytes)
	if _, err := rand.Read(random); err != nil {
		t.Fatalf("fleettest: run ID: %v", err)
	}
	id := hex.EncodeToString(random)
	f := &Fleet{
		t:     t,
		RunID: id,
		dir:   filepath.Join(os.TempDir(), dirPrefix+id),
		// Parallel runs get different subnets (most of the time), which keeps
		// their addresses apart in logs; their switches are separate anyway.
		subnet:   int(random[0]),
		switchNS: namePrefix + id + "-sw",
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		t.Fatalf("fleettest: run directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		t.Fatalf("fleettest: run directory: %v", err)
	}
	t.Cleanup(f.teardown)
	t.Logf("fleet %s: directory %s, hosts on 10.213.%d.0/24", id, f.dir, f.subnet)

	f.buildBinaries(t)
	f.appImage = dockertest.BuildImage(t, main, appPackage)
	appTar := f.saveImage(t, main)
	t.Logf("fleet %s: binaries and app image built in %v", id, time.Since(started).Round(time.Millisecond))

	f.createSwitch(t)
	for i := 1; i <= n; i++ {
		f.Hosts = append(f.Hosts, f.addHost(t, i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, h := range f.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.startDocker(h, appTar)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet %s: %d dockerds up with the app image after %v", id, n, time.Since(started).Round(time.Millisecond))

	for _, h := range f.Hosts {
		if err := f.startAgent(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range f.Hosts {
		if err := f.waitAgent(h); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("fleet %s: %d agents answer after %v", id, n, time.Since(started).Round(time.Millisecond))
	return f
}

// Host returns host i, counting from 1.
func (f *Fleet) Host(i int) *Host {
	f.t.Helper()
	if i < 1 || i > len(f.Hosts) {
		f.t.Fatalf("fleettest: no host %d; the fleet has hosts 1..%d", i, len(f.Hosts))
	}
	return f.Hosts[i-1]
}

// BalancerURL is the URL of the host's "web" listener.
func (h *Host) BalancerURL() string {
	return fmt.Sprintf("http://%s:%d/", h.IP, BalancerPort)
}

// TokenFile is the agent's admin.token-file: the admin API on the host's
// address takes `Authorization: Bearer <its content>`.
func (h *Host) TokenFile() string { return filepath.Join(h.dir, "admin-token") }

// AdminURL is the URL of the host's admin API.
func (h *Host) AdminURL() string {
	return fmt.Sprintf("http://%s:%d", h.IP, AdminPort)
}

func (f *Fleet) hostIP(i int) string {
	return fmt.Sprintf("10.213.%d.%d", f.subnet, 10+i)
}

func (f *Fleet) vethName(i int) string {
	return fmt.Sprintf("b%sh%d", f.RunID, i)
}

// buildBinaries compiles berth and the load client into the run directory.
func (f *Fleet) buildBinaries(t testing.TB) {
	t.Helper()
	f.berth = filepath.Join(f.dir, "berth")
	f.loadClient = filepath.Join(f.dir, "loadclient")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, b := range []struct{ pkg, out string }{{berthPackage, f.berth}, {clientPackage, f.loadClient}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", b.out, b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("fleettest: go build %s: %w\n%s", b.pkg, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// saveImage exports the app image from the machine's engine, to be loaded into
// every host's dockerd (no registry is reachable to pull it from).
func (f *Fleet) saveImage(t testing.TB, main *client.Client) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	rc, err := main.ImageSave(ctx, []string{f.appImage})
	if err != nil {
		t.Fatalf("fleettest: save image %s: %v", f.appImage, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatalf("fleettest: save image %s: %v", f.appImage, err)
	}
	return buf.Bytes()
}

// createSwitch makes the switch namespace and its bridge.
func (f *Fleet) createSwitch(t testing.TB) {
	t.Helper()
	for _, args := range [][]string{
		{"netns", "add", f.switchNS},
		{"-n", f.switchNS, "link", "set", "lo", "up"},
		{"-n", f.switchNS, "link", "add", "br0", "type", "bridge"},
		{"-n", f.switchNS, "link", "set", "br0", "up"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
}

// addHost makes host i's namespace, wired to the switch by a veth pair whose
// switch end is the one LinkDown cuts.
func (f *Fleet) addHost(t testing.TB, i int) *Host {
	t.Helper()
	h := &Host{
		Index:     i,
		Name:      fmt.Sprintf("h%d", i),
		Namespace: fmt.Sprintf("%s%s-h%d", namePrefix, f.RunID, i),
		IP:        f.hostIP(i),
		dir:       filepath.Join(f.dir, fmt.Sprintf("h%d", i)),
	}
	h.dockerSock = filepath.Join(h.dir, "docker.sock")
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		t.Fatalf("fleettest: host %s directory: %v", h.Name, err)
	}
	veth := f.vethName(i)
	for _, args := range [][]string{
		{"netns", "add", h.Namespace},
		{"-n", h.Namespace, "link", "set", "lo", "up"},
		{"-n", f.switchNS, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.Namespace},
		{"-n", f.switchNS, "link", "set", veth, "master", "br0", "up"},
		{"-n", h.Namespace, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"-n", h.Namespace, "link", "set", "eth0", "up"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// DockerConfig is the daemon.json the harness writes for a host's dockerd;
// the zero value is the config every host starts with.
type DockerConfig struct {
	// LiveRestore keeps the containers running while dockerd is down
	// (live-restore: true), as on hosts that upgrade Docker in place.
	LiveRestore bool `json:"live-restore"`
}

// writeDockerConfig writes the host's daemon.json. It never holds the
// machine's own settings (/etc/docker/daemon.json is for its own engine, and
// its data-root would clash with ours).
func writeDockerConfig(h *Host, cfg DockerConfig) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("fleettest: dockerd config of %s: %w", h.Name, err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "daemon.json"), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("fleettest: dockerd config of %s: %w", h.Name, err)
	}
	return nil
}

// startDocker starts the host's dockerd in its namespace, waits until it
// answers and loads the app image into it.
func (f *Fleet) startDocker(h *Host, appTar []byte) error {
	if err := writeDockerConfig(h, DockerConfig{}); err != nil {
		return err
	}
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+h.dockerSock), client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("fleettest: docker client of %s: %w", h.Name, err)
	}
	h.Docker = cli
	if err := f.launchDocker(h); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	resp, err := cli.ImageLoad(ctx, bytes.NewReader(appTar), client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("fleettest: load the app image into %s: %w", h.Name, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(resp.Body); err != nil {
		return fmt.Errorf("fleettest: load the app image into %s: %w", h.Name, err)
	}
	if _, err := cli.ImageInspect(ctx, f.appImage); err != nil {
		return fmt.Errorf("fleettest: the app image is not in %s after loading it (%s): %w", h.Name, strings.TrimSpace(out.String()), err)
	}
	return nil
}

// launchDocker starts the host's dockerd with its daemon.json and its data
// (a restarted daemon finds its containers and images again) and waits until
// it answers.
func (f *Fleet) launchDocker(h *Host) error {
	// nsenter, not `ip netns exec`, which remounts /sys and hides the cgroup
	// mounts dockerd needs. Its iptables rules are the host namespace's own,
	// as on a real host they are the host's: published ports keep forwarding
	// while dockerd is down (live-restore), which Docker's userland proxy,
	// a child of dockerd, does not. No masquerading: the apps need no way out.
	args := []string{"--net=/run/netns/" + h.Namespace, "dockerd",
		"--config-file", filepath.Join(h.dir, "daemon.json"),
		"--data-root", filepath.Join(h.dir, "data"),
		"--exec-root", filepath.Join(h.dir, "exec"),
		"--pidfile", filepath.Join(h.dir, "docker.pid"),
		"-H", "unix://" + h.dockerSock,
		"--cgroup-parent", h.Namespace,
		"--ip-masq=false",
		"--bip", fmt.Sprintf("172.%d.%d.1/24", 20+h.Index, f.subnet),
		"--shutdown-timeout", "5",
		// Warnings and errors only: a failed test shows the log's tail.
		"--log-level", "warn",
	}
	p, err := startProcess("dockerd of "+h.Name, filepath.Join(h.dir, "dockerd.log"), "nsenter", args...)
	if err != nil {
		return err
	}
	h.dockerd = p
	if err := waitFor(startTimeout, p, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := h.Docker.Ping(ctx)
		return err == nil
	}); err != nil {
		return fmt.Errorf("fleettest: dockerd of %s does not answer on %s: %w\n%s", h.Name, h.dockerSock, err, tail(p.log))
	}
	return nil
}

// ConfigureDocker writes cfg to host i's daemon.json and has its dockerd
// reload it (SIGHUP), then waits until the daemon reports it in force.
func (f *Fleet) ConfigureDocker(i int, cfg DockerConfig) error {
	h := f.Host(i)
	if err := writeDockerConfig(h, cfg); err != nil {
		return err
	}
	if err := h.dockerd.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("fleettest: reload the dockerd of %s: %w", h.Name, err)
	}
	var last string
	if err := waitFor(startTimeout, h.dockerd, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := h.Docker.Info(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("live-restore %v", info.LiveRestoreEnabled)
		return info.LiveRestoreEnabled == cfg.LiveRestore
	}); err != nil {
		return fmt.Errorf("fleettest: the dockerd of %s does not take %+v (last seen: %s): %w\n%s", h.Name, cfg, last, err, tail(h.dockerd.log))
	}
	return nil
}

// StopDocker stops host i's dockerd as a service manager does (SIGTERM) and
// waits until it has ended: without live-restore it stops the containers
// first, with it they keep running.
func (f *Fleet) StopDocker(i int) error {
	h := f.Host(i)
	if err := h.dockerd.terminate(stopTimeout); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(h.dockerd.log))
	}
	return nil
}

// StartDocker starts host i's dockerd again after StopDocker, on the same
// data, and waits until it answers.
func (f *Fleet) StartDocker(i int) error {
	return f.launchDocker(f.Host(i))
}

// agentConfig is the berth config of a host: its own daemon, every listener on
// the host's address, and the other hosts to join.
func (f *Fleet) agentConfig(h *Host) string {
	var join []string
	for i := 1; i <= len(f.Hosts); i++ {
		if i != h.Index {
			join = append(join, fmt.Sprintf("%s:%d", f.hostIP(i), GossipPort))
		}
	}
	// The default connect timeout (10 s): a host cut off must cost no request
	// with the config every user starts with.
	// The hosts' gossip is on a network beyond loopback: it needs the fleet key.
	return fmt.Sprintf(`node: {name: %s, advertise: %s}
docker: {host: "unix://%s", resync: 5s}
cluster:
  enabled: true
  bind: %s:%d
  join: [%s]
  secret-key-file: %s
admin: {listen: "%s:%d", token-file: "%s"}
listeners:
  - name: web
    protocol: http
    address: "%s:%d"
    default: {forward: web}
groups:
  web: {deregistration-delay: 30s}
`, h.Name, h.IP, h.dockerSock, h.IP, GossipPort, strings.Join(join, ", "), f.keyFile(), h.IP, AdminPort, h.TokenFile(), h.IP, BalancerPort)
}

// keyFile is the fleet's gossip key, shared by every host.
func (f *Fleet) keyFile() string { return filepath.Join(f.dir, "gossip.key") }

// writeKey makes the fleet's gossip key once, as `berth keygen` would.
func (f *Fleet) writeKey() error {
	if _, err := os.Stat(f.keyFile()); err == nil {
		return nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("fleettest: gossip key: %w", err)
	}
	if err := os.WriteFile(f.keyFile(), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("fleettest: gossip key: %w", err)
	}
	return nil
}

// startAgent starts the host's berth agent in its namespace.
func (f *Fleet) startAgent(h *Host) error {
	if err := f.writeKey(); err != nil {
		return err
	}
	config := filepath.Join(h.dir, "berth.yaml")
	if err := os.WriteFile(config, []byte(f.agentConfig(h)), 0o600); err != nil {
		return fmt.Errorf("fleettest: agent config of %s: %w", h.Name, err)
	}
	// The admin API listens on the host's address, which needs a token;
	// /healthz, which the harness asks, does not.
	if err := os.WriteFile(h.TokenFile(), []byte(rand.Text()+"\n"), 0o600); err != nil {
		return fmt.Errorf("fleettest: admin token of %s: %w", h.Name, err)
	}
	p, err := startProcess("agent of "+h.Name, filepath.Join(h.dir, "agent.log"),
		"nsenter", "--net=/run/netns/"+h.Namespace, f.berth, "agent", "--config", config, "--log-level", "debug")
	if err != nil {
		return err
	}
	h.agent = p
	return nil
}

// waitAgent waits until the host's admin API answers /healthz.
func (f *Fleet) waitAgent(h *Host) error {
	url := h.AdminURL() + "/healthz"
	if err := waitFor(startTimeout, h.agent, func() bool {
		r, err := f.Load(h.Index, LoadOptions{URL: url, Rate: 10, Duration: 100 * time.Millisecond, Timeout: time.Second})
		return err == nil && r.OK > 0 && r.Failed == 0
	}); err != nil {
		return fmt.Errorf("fleettest: the agent of %s does not answer %s: %w\n%s", h.Name, url, err, tail(h.agent.log))
	}
	return nil
}

// RunApp starts a replica of the example app on host i, labelled
// berth.group=web and publishing port 8080 on every address with a dynamic
// host port, so its target is the host's advertise address. NAME, and so the
// app's answers, is "h<i>-<n>", returned with the container ID.
func (f *Fleet) RunApp(t testing.TB, i int) (id, name string) {
	t.Helper()
	h := f.Host(i)
	h.mu.Lock()
	h.replicas++
	n := h.replicas
	h.mu.Unlock()
	name = fmt.Sprintf("%s-%d", h.Name, n)

	stopTimeout := 10
	port := nat.Port("8080/tcp")
	config := &container.Config{
		Image:        f.appImage,
		Labels:       map[string]string{"berth.group": "web", Label: f.RunID},
		Env:          []string{"NAME=" + name},
		ExposedPorts: nat.PortSet{port: {}},
		StopTimeout:  &stopTimeout,
	}
	// unless-stopped, as compose files for services usually say: the
	// replicas that ran come back when the host's dockerd restarts, the
	// ones stopped by hand stay stopped.
	hostConfig := &container.HostConfig{
		PortBindings:  nat.PortMap{port: {{HostIP: "", HostPort: ""}}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	created, err := h.Docker.ContainerCreate(ctx, config, hostConfig, nil, nil, name)
	if err != nil {
		t.Fatalf("fleettest: create %s on %s: %v", name, h.Name, err)
	}
	if err := h.Docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("fleettest: start %s on %s: %v", name, h.Name, err)
	}
	return created.ID, name
}

// StopContainer stops a container of host i the way `docker stop` does.
func (f *Fleet) StopContainer(t testing.TB, i int, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if err := f.Host(i).Docker.ContainerStop(ctx, id, container.StopOptions{}); err != nil {
		t.Fatalf("fleettest: stop container %s on h%d: %v", id, i, err)
	}
}

// LinkDown cuts host i off the switch: its veth is set down on the switch side.
func (f *Fleet) LinkDown(i int) error {
	return ip("-n", f.switchNS, "link", "set", f.vethName(i), "down")
}

// LinkUp puts host i back on the switch.
func (f *Fleet) LinkUp(i int) error {
	return ip("-n", f.switchNS, "link", "set", f.vethName(i), "up")
}

// LoadOptions describe a run of the load client.
type LoadOptions struct {
	URL string
	// Rate is requests per second; half use keep-alive connections, half a
	// new connection each.
	Rate     int
	Duration time.Duration
	// Timeout bounds each request.
	Timeout time.Duration
}

// LoadResult is what the load client saw; LoadFailure one failed request.
type (
	LoadResult  = loadreport.Result
	LoadFailure = loadreport.Failure
)

// Load runs the load client inside host i's namespace and waits for its result.
func (f *Fleet) Load(i int, opts LoadOptions) (LoadResult, error) {
	return f.StartLoad(i, opts).Wait()
}

// RunningLoad is a load client started by StartLoad.
type RunningLoad struct {
	done   chan struct{}
	result LoadResult
	err    error
}

// StartLoad starts the load client inside host i's namespace; Wait returns its
// result.
func (f *Fleet) StartLoad(i int, opts LoadOptions) *RunningLoad {
	l := &RunningLoad{done: make(chan struct{})}
	ns := fmt.Sprintf("%s%s-h%d", namePrefix, f.RunID, i)
	go func() {
		defer close(l.done)
		ctx, cancel := context.WithTimeout(context.Background(), opts.Duration+opts.Timeout+commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+ns, f.loadClient,
			"-url", opts.URL, "-rate", strconv.Itoa(opts.Rate),
			"-duration", opts.Duration.String(), "-timeout", opts.Timeout.String())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			l.err = fmt.Errorf("fleettest: load client in %s: %w: %s", ns, err, strings.TrimSpace(stderr.String()))
			return
		}
		if err := json.Unmarshal(stdout.Bytes(), &l.result); err != nil {
			l.err = fmt.Errorf("fleettest: load client in %s printed %q: %w", ns, stdout.String(), err)
		}
	}()
	return l
}

// Wait waits for the load client to finish.
func (l *RunningLoad) Wait() (LoadResult, error) {
	<-l.done
	return l.result, l.err
}

// teardown removes everything the fleet created, in an order that lets each
// step work: containers through their daemons, then agents and daemons, then
// what the daemons may have left (mounts, cgroups), then the network and the
// directory. It reports anything it could not remove, and checks at the end
// that nothing carrying the run ID remains.
func (f *Fleet) teardown() {
	t := f.t
	started := time.Now()
	if t.Failed() {
		for _, h := range f.Hosts {
			for _, p := range []*process{h.agent, h.dockerd} {
				if p != nil {
					t.Logf("last lines of the log of the %s:\n%s", p.name, tail(p.log))
				}
			}
		}
	}
	for _, h := range f.Hosts {
		if h.Docker != nil && h.dockerd != nil && !h.dockerd.ended() {
			if err := removeContainers(h); err != nil {
				t.Error(err)
			}
		}
	}
	var wg sync.WaitGroup
	for _, h := range f.Hosts {
		for _, p := range []*process{h.agent} {
			if p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); p.stop(t) }()
			}
		}
	}
	wg.Wait()
	for _, h := range f.Hosts {
		if h.dockerd != nil {
			wg.Add(1)
			go func() { defer wg.Done(); h.dockerd.stop(t) }()
		}
	}
	wg.Wait()
	for _, h := range f.Hosts {
		if h.Docker != nil {
			h.Docker.Close()
		}
	}
	if err := removeRun(f.RunID); err != nil {
		t.Error(err)
	}
	if leftovers := runLeftovers(f.RunID); len(leftovers) > 0 {
		t.Errorf("fleettest: run %s left behind:\n%s", f.RunID, strings.Join(leftovers, "\n"))
	}
	t.Logf("fleet %s: removed in %v", f.RunID, time.Since(started).Round(time.Millisecond))
}

// removeContainers force-removes every container of the host's daemon; the
// daemon belongs to the fleet, so all of them are the test's.
func removeContainers(h *Host) error {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	list, err := h.Docker.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("fleettest: list containers of %s: %w", h.Name, err)
	}
	var errs []error
	for _, c := range list {
		if err := h.Docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("fleettest: remove container %s of %s: %w", c.ID, h.Name, err))
		}
	}
	return errors.Join(errs...)
}

// removeRun removes what a run may have left once its processes have ended:
// processes still in its namespaces, mounts under its directory, cgroups,
// namespaces (which takes the veths and the bridge with them) and the
// directory.
func removeRun(runID string) error {
	var errs []error
	namespaces, err := runNamespaces(runID)
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range namespaces {
		if pids := namespacePIDs(ns); len(pids) > 0 {
			errs = append(errs, fmt.Errorf("fleettest: processes %v were still in namespace %s; killed", pids, ns))
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	dir := filepath.Join(os.TempDir(), dirPrefix+runID)
	for _, m := range mountsUnder(dir) {
		// Lazy, recursive: a mount dockerd left busy still goes away.
		if out, err := exec.Command("umount", "-R", "-l", m).CombinedOutput(); err != nil && len(mountsUnder(m)) > 0 {
			errs = append(errs, fmt.Errorf("fleettest: umount %s: %w: %s", m, err, strings.TrimSpace(string(out))))
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + namePrefix + runID + "-h*")
	for _, cg := range cgroups {
		if err := removeCgroup(cg); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range namespaces {
		if err := ip("netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("fleettest: remove %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// removeCgroup removes a cgroup and the ones below it, deepest first: a
// dockerd that was killed leaves its containers' cgroups, empty, under the
// host's, and a cgroup with children cannot be removed.
func removeCgroup(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, removeCgroup(filepath.Join(dir, e.Name())))
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("fleettest: remove cgroup %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// runLeftovers lists what still carries the run ID: namespaces, processes
// (by command line), mounts and cgroups.
func runLeftovers(runID string) []string {
	var found []string
	namespaces, err := runNamespaces(runID)
	if err != nil {
		found = append(found, err.Error())
	}
	for _, ns := range namespaces {
		found = append(found, "namespace "+ns)
	}
	for pid, line := range processesNaming(runID) {
		found = append(found, "process "+strconv.Itoa(pid)+": "+line)
	}
	for _, m := range mountsUnder(filepath.Join(os.TempDir(), dirPrefix+runID)) {
		found = append(found, "mount "+m)
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + namePrefix + runID + "-h*")
	for _, cg := range cgroups {
		found = append(found, "cgroup "+cg)
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), dirPrefix+runID)); err == nil {
		found = append(found, "directory "+filepath.Join(os.TempDir(), dirPrefix+runID))
	}
	return found
}

// processesNaming are the processes, but this one, whose command line names
// the run (its directory or its namespaces), with their command lines.
func processesNaming(runID string) map[int]string {
	found := map[int]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		pid, perr := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || perr != nil || pid == os.Getpid() {
			continue
		}
		if line := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})); strings.Contains(line, dirPrefix+runID) || strings.Contains(line, namePrefix+runID+"-") {
			found[pid] = line
		}
	}
	return found
}

// SweepStale removes the runs a killed test left behind: a run whose owning
// test process has ended and whose namespaces hold no process any more. A run
// with processes left is kept and reported, since they may hold mounts that
// only their own shutdown releases cleanly.
func SweepStale(t testing.TB) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("fleettest: ip netns list: %v", err)
	}
	runs := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], namePrefix) {
			continue
		}
		rest := strings.TrimPrefix(fields[0], namePrefix)
		if runID, _, ok := strings.Cut(rest, "-"); ok && isRunID(runID) {
			runs[runID] = true
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		if runID := strings.TrimPrefix(filepath.Base(d), dirPrefix); isRunID(runID) {
			runs[runID] = true
		}
	}
	for runID := range runs {
		if ownerAlive(runID) {
			continue
		}
		namespaces, _ := runNamespaces(runID)
		var busy []string
		for _, ns := range namespaces {
			if pids := namespacePIDs(ns); len(pids) > 0 {
				busy = append(busy, fmt.Sprintf("%s (processes %v)", ns, pids))
			}
		}
		if len(busy) > 0 {
			t.Logf("fleettest: a previous run %s left namespaces with processes in them; left alone: %s", runID, strings.Join(busy, ", "))
			continue
		}
		if err := removeRun(runID); err != nil {
			t.Logf("fleettest: sweeping the stale run %s: %v", runID, err)
			continue
		}
		t.Logf("fleettest: swept the stale run %s", runID)
	}
}

// isRunID reports whether s has the form of the run IDs New makes, so the
// sweep never touches a berth-* namespace something else created.
func isRunID(s string) bool {
	if len(s) != 2*runIDBytes {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// ownerAlive reports whether the test process that created the run still runs.
func ownerAlive(runID string) bool {
	data, err := os.ReadFile(filepath.Join(os.TempDir(), dirPrefix+runID, ownerFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

func runNamespaces(runID string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("fleettest: ip netns list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && strings.HasPrefix(fields[0], namePrefix+runID+"-") {
			names = append(names, fields[0])
		}
	}
	return names, nil
}

func namespacePIDs(ns string) []int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	var pids []int
	for _, field := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(field); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		if m := fields[4]; m == dir || strings.HasPrefix(m, dir+"/") {
			mounts = append([]string{m}, mounts...)
		}
	}
	return mounts
}

// startProcess starts a long-running child whose output goes to logPath. If
// the test process dies without its cleanup, the child gets SIGTERM and shuts
// down by itself (dockerd then stops its containers and unmounts).
func startProcess(name, logPath, command string, args ...string) (*process, error) {
	// Appended to: a restarted daemon's log follows its first run's.
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fleettest: log of the %s: %w", name, err)
	}
	cmd := exec.Command(command, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("fleettest: start the %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) ended() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM and waits up to timeout for the process to end.
func (p *process) terminate(timeout time.Duration) error {
	if p.ended() {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("fleettest: the %s did not stop within %v of SIGTERM", p.name, timeout)
	}
}

// stop terminates the process, and kills it if it has not ended within
// stopTimeout of SIGTERM.
func (p *process) stop(t testing.TB) {
	if err := p.terminate(stopTimeout); err != nil {
		t.Errorf("%v; killing it", err)
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitFor polls cond until it holds, the deadline passes or p ends.
func waitFor(timeout time.Duration, p *process, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if p.ended() {
			return fmt.Errorf("the %s exited: %v", p.name, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v", timeout)
		}
		time.Sleep(pollInterval)
	}
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("fleettest: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tail returns the last logTail lines of a file.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > logTail {
		lines = lines[len(lines)-logTail:]
	}
	return strings.Join(lines, "\n")
}
