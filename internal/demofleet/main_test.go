package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/fleettest"
)

// build compiles the command into a directory anyone may read, so that it
// also runs as an unprivileged user.
func build(t *testing.T) string {
	t.Helper()
	// Not t.TempDir(): its parent is readable by root only.
	dir, err := os.MkdirTemp("", "demofleet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "demo-fleet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestNeedsRoot: without root the demo says so and what to run.
func TestNeedsRoot(t *testing.T) {
	cmd := exec.Command(build(t), "start")
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	cmd.Env = append(os.Environ(), "BERTH_DEMO_FLEET_DIR="+filepath.Join(t.TempDir(), "state"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs root") || !strings.Contains(string(out), "sudo make demo-fleet") {
		t.Fatalf("start as nobody: err %v, output %q; want a failure saying it needs root", err, out)
	}
}

// TestStartAndStop is a smoke test of make demo-fleet and make stop-fleet
// (the fleet itself is tested by internal/fleettest): start prints a node
// this machine can curl, and stop leaves nothing of the run behind.
func TestStartAndStop(t *testing.T) {
	fleettest.Require(t)
	bin := build(t)
	state := filepath.Join(t.TempDir(), "state")
	env := append(os.Environ(), "BERTH_DEMO_FLEET_DIR="+state)
	run := func(command string) string {
		cmd := exec.Command(bin, command)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("demo-fleet %s: %v\n%s", command, err, out)
		}
		return string(out)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			run("stop")
		}
	})
	out := run("start")
	runID, err := os.ReadFile(filepath.Join(state, runFile))
	if err != nil {
		t.Fatalf("no run ID after start: %v\n%s", err, out)
	}
	id := strings.TrimSpace(string(runID))
	node := regexp.MustCompile(`curl (http://10\.213\.\d+\.13:8000/)`).FindStringSubmatch(out)
	if node == nil {
		t.Fatalf("start does not print how to curl h3:\n%s", out)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(node[1])
	if err != nil {
		t.Fatalf("curl %s from this machine: %v", node[1], err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !regexp.MustCompile(`^h[12]-\d `).Match(body) {
		t.Fatalf("h3 answered %d %q, want a replica of h1 or h2", resp.StatusCode, body)
	}
	for _, want := range []string{"Authorization: Bearer", "docker -H unix://", "link set", "make stop-fleet"} {
		if !strings.Contains(out, want) {
			t.Errorf("the instructions do not say %q:\n%s", want, out)
		}
	}

	run("stop")
	stopped = true
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the state directory is still there: %v", err)
	}
	namespaces, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "link").Output()
	for what, list := range map[string][]byte{"namespace": namespaces, "link": links} {
		if strings.Contains(string(list), id) {
			t.Errorf("a %s of run %s is left:\n%s", what, id, list)
		}
	}
	if err := fleettest.Remove(id, 0); err != nil {
		t.Errorf("after stop: %v", err)
	}
}
