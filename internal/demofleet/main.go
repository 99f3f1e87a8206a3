// Command demofleet runs a fleet of three simulated Docker hosts on this
// machine for a person to try (make demo-fleet, make stop-fleet). It is
// internal/fleettest, the harness of the fleet test, driven from a command:
// each host is a network namespace with its own dockerd and berth agent.
//
//	demofleet start   start the fleet in the background and print how to use it
//	demofleet stop    remove it, also after the background process was killed
//
// What a run needs to be found again lives in /run/berth-demo-fleet, or in
// $BERTH_DEMO_FLEET_DIR when set (the smoke test's own).
package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/fleettest"
)

// StateDir holds the run of the one demo fleet of this machine: the PID of
// the process that owns it, the fleet's run ID, its log and the instructions.
// Under /run, so that a reboot, which takes the namespaces, takes it too.
var StateDir = cmp.Or(os.Getenv("BERTH_DEMO_FLEET_DIR"), "/run/berth-demo-fleet")

const (
	pidFile   = "pid"
	runFile   = "run-id"
	logFile   = "demo.log"
	helpFile  = "instructions.txt"
	readyFile = "ready"

	hosts = 3
	// startTimeout covers compiling berth and the app, building the app's
	// image and starting three dockerds: minutes on a busy machine.
	startTimeout = 10 * time.Minute
	routeTimeout = time.Minute
	stopTimeout  = 2 * time.Minute
	// orphanWait is how long stop lets a killed demo's dockerds shut down by
	// themselves (they get SIGTERM when it dies) before killing them.
	orphanWait = 30 * time.Second
)

// replicas says which hosts run the example app, and how many replicas:
// the third host runs none and still routes to the others'.
var replicas = []int{1: 2, 2: 1, 3: 0}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: demofleet start|stop (make demo-fleet, make stop-fleet)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "start":
		err = start(os.Stdout)
	case "stop":
		err = stop(os.Stdout)
	case "serve":
		err = serve()
	default:
		err = fmt.Errorf("unknown command %q: want start or stop", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demofleet:", err)
		os.Exit(1)
	}
}

// requireRoot says what to do when the fleet cannot be made.
func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the demo fleet needs root: it creates network namespaces and runs a dockerd per simulated host; run it with sudo (sudo make demo-fleet)")
	}
	for _, tool := range []string{"ip", "nsenter", "dockerd", "containerd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the demo fleet needs %s (iproute2, util-linux and Docker's engine): %w", tool, err)
		}
	}
	return nil
}

// start runs `demofleet serve` in its own session, so that it outlives make,
// and waits until it reports the fleet ready or fails.
func start(stdout io.Writer) error {
	if err := requireRoot(); err != nil {
		return err
	}
	if pid, alive := owner(); alive {
		fmt.Fprintf(stdout, "the demo fleet runs already (process %d); make stop-fleet removes it\n\n", pid)
		return printFile(stdout, filepath.Join(StateDir, helpFile))
	}
	if _, err := os.Stat(StateDir); err == nil {
		fmt.Fprintln(stdout, "removing what a previous demo fleet left")
		if err := stop(io.Discard); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	log, err := os.Create(filepath.Join(StateDir, logFile))
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	defer log.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "serve")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the fleet's process: %w", err)
	}
	if err := os.WriteFile(filepath.Join(StateDir, pidFile), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(stdout, "starting three simulated hosts (building berth and the example app first; log: %s)\n", log.Name())
	deadline := time.After(startTimeout)
	for {
		if _, err := os.Stat(filepath.Join(StateDir, readyFile)); err == nil {
			return printFile(stdout, filepath.Join(StateDir, helpFile))
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the fleet did not start (%v); the end of its log, %s:\n%s\nmake stop-fleet removes what it left", err, log.Name(), tail(log.Name(), 30))
		case <-deadline:
			return fmt.Errorf("the fleet was not ready within %v; see %s, and make stop-fleet", startTimeout, log.Name())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop ends the fleet's process, which removes the fleet, and then removes
// whatever a killed one left.
func stop(stdout io.Writer) error {
	if err := requireRoot(); err != nil {
		return err
	}
	if _, err := os.Stat(StateDir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(stdout, "no demo fleet runs")
		return nil
	}
	pid, alive := owner()
	if alive {
		fmt.Fprintf(stdout, "stopping the demo fleet (process %d)\n", pid)
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(stopTimeout)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			fmt.Fprintf(stdout, "process %d did not end within %v of SIGTERM; killing it\n", pid, stopTimeout)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// The run ID file is missing when the process died before the fleet
	// had one; the run then still names its owner.
	runs := fleettest.RunsOwnedBy(pid)
	if id, err := os.ReadFile(filepath.Join(StateDir, runFile)); err == nil && !slices.Contains(runs, strings.TrimSpace(string(id))) {
		runs = append(runs, strings.TrimSpace(string(id)))
	}
	for _, id := range runs {
		if err := fleettest.Remove(id, orphanWait); err != nil {
			return fmt.Errorf("%w\nthe state is kept in %s; run make stop-fleet again", err, StateDir)
		}
	}
	if err := os.RemoveAll(StateDir); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "the demo fleet is removed: namespaces, dockerds, agents, veths and directories")
	return nil
}

// owner is the PID of the fleet's process, and whether it still runs.
func owner() (int, bool) {
	data, err := os.ReadFile(filepath.Join(StateDir, pidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

// serve is the fleet's process: it starts the fleet, writes the
// instructions, and removes the fleet on SIGTERM or SIGINT.
func serve() error {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	tb := &runner{}
	defer tb.cleanup()
	var instructions string
	done := make(chan struct{})
	// fleettest ends a failed step with runtime.Goexit, as a test's t.Fatal
	// does, so the fleet is started on a goroutine of its own.
	go func() {
		defer close(done)
		f := fleettest.New(tb, hosts)
		if err := os.WriteFile(filepath.Join(StateDir, runFile), []byte(f.RunID+"\n"), 0o600); err != nil {
			tb.Fatalf("demofleet: %v", err)
		}
		rootIP, err := f.ConnectRoot()
		if err != nil {
			tb.Fatal(err)
		}
		var names []string
		for i, n := range replicas {
			for range n {
				_, name := f.RunApp(tb, i)
				names = append(names, name)
			}
		}
		for _, h := range f.Hosts {
			if err := waitRouted(h.BalancerURL(), names); err != nil {
				tb.Fatalf("demofleet: %s: %v", h.Name, err)
			}
		}
		instructions = describe(f, rootIP)
	}()
	select {
	case <-done:
	case sig := <-signals:
		// fleettest cannot be interrupted: its cleanups may run only once
		// New has returned or given up.
		fmt.Printf("%v while starting: the fleet is removed once its start ends\n", sig)
		<-done
		return fmt.Errorf("stopped by %v while starting", sig)
	}
	if tb.Failed() || instructions == "" {
		return errors.New("the fleet did not start; see the log above")
	}
	if err := os.WriteFile(filepath.Join(StateDir, helpFile), []byte(instructions), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(StateDir, readyFile), nil, 0o600); err != nil {
		return err
	}
	fmt.Println("the fleet is ready")
	sig := <-signals
	fmt.Printf("%v: removing the fleet\n", sig)
	return nil
}

// waitRouted polls a node's listener, from this machine through the switch,
// until every replica has answered.
func waitRouted(url string, names []string) error {
	client := &http.Client{Timeout: time.Second}
	seen := map[string]bool{}
	deadline := time.Now().Add(routeTimeout)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if fields := strings.Fields(string(body)); resp.StatusCode == http.StatusOK && len(fields) > 0 {
				seen[fields[0]] = true
			}
		}
		all := true
		for _, n := range names {
			all = all && seen[n]
		}
		if all {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer from each of %v within %v (answered: %v)", url, names, routeTimeout, seen)
}

// describe is what a person can do with the fleet, with the exact commands.
func describe(f *fleettest.Fleet, rootIP string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nThe demo fleet runs: three simulated hosts, each a network namespace with its own\n")
	fmt.Fprintf(&b, "dockerd and berth agent, on a switch this machine reaches as %s.\n\n", rootIP)
	fmt.Fprintf(&b, "%-4s  %-15s  %-8s  %s\n", "HOST", "ADDRESS", "REPLICAS", "NAMESPACE")
	for _, h := range f.Hosts {
		fmt.Fprintf(&b, "%-4s  %-15s  %-8d  %s\n", h.Name, h.IP, replicas[h.Index], h.Namespace)
	}
	h1, h3 := f.Host(1), f.Host(3)
	fmt.Fprintf(&b, "\nEvery node routes to every replica (repeat to see them take turns):\n")
	for _, h := range f.Hosts {
		fmt.Fprintf(&b, "  curl %s\n", h.BalancerURL())
	}
	fmt.Fprintf(&b, "\nEach node's dashboard and admin API are at http://HOST-IP:%d/ and take the\n", fleettest.AdminPort)
	fmt.Fprintf(&b, "node's admin token (a bearer token, in a file per host):\n")
	for _, h := range f.Hosts {
		fmt.Fprintf(&b, "  %s  %s/   token: %s\n", h.Name, h.AdminURL(), h.TokenFile())
	}
	fmt.Fprintf(&b, "  curl -H \"Authorization: Bearer $(cat %s)\" %s/api/v1/targets\n", h1.TokenFile(), h1.AdminURL())
	fmt.Fprintf(&b, "  bin/berth status --admin %s:%d --token-file %s   # bin/berth: make build\n", h1.IP, fleettest.AdminPort, h1.TokenFile())
	fmt.Fprintf(&b, "\nStop a container (it drains on every node; its name answers no more):\n")
	fmt.Fprintf(&b, "  docker -H %s ps\n", h1.DockerHost())
	fmt.Fprintf(&b, "  docker -H %s stop h1-1\n", h1.DockerHost())
	fmt.Fprintf(&b, "  docker -H %s start h1-1\n", h1.DockerHost())
	fmt.Fprintf(&b, "\nCut a host off the switch (the others mark it dead and stop routing to it), and back:\n")
	fmt.Fprintf(&b, "  %s\n", f.LinkCommand(1, false))
	fmt.Fprintf(&b, "  curl %s      # a few seconds later: h2's replica only\n", h3.BalancerURL())
	fmt.Fprintf(&b, "  %s\n", f.LinkCommand(1, true))
	fmt.Fprintf(&b, "\nLogs: %s/h<N>/agent.log and dockerd.log. Remove everything: make stop-fleet\n", filepath.Dir(h1.Dir()))
	return b.String()
}

func printFile(w io.Writer, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	file, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer file.Close()
	var lines []string
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// runner is the testing.TB that fleettest is driven with: it logs to stdout,
// keeps the cleanups and ends a failed step like t.Fatal does. fleettest
// calls only the methods below; the embedded interface is nil, so a call to
// any other would panic, which the smoke test of make demo-fleet would show.
type runner struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (r *runner) Helper()                         {}
func (r *runner) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (r *runner) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	fmt.Printf("error: "+format+"\n", args...)
}
func (r *runner) Error(args ...any)                 { r.Errorf("%s", fmt.Sprint(args...)) }
func (r *runner) Fatalf(format string, args ...any) { r.Errorf(format, args...); runtime.Goexit() }
func (r *runner) Fatal(args ...any)                 { r.Error(args...); runtime.Goexit() }

// Skip is how fleettest and dockertest say a prerequisite is missing; for
// the demo that is a failure.
func (r *runner) Skip(args ...any) { r.Fatal(args...) }

func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// cleanup runs the cleanups, last registered first, as a test's end does.
func (r *runner) cleanup() {
	r.mu.Lock()
	cleanups := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}
