package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/freeport"
	"github.com/berth-lb/berth/internal/loadtest"
)

// agentProcess is `berth agent` run as a process of its own: this test
// binary, re-run as the berth command (TestBerthProcess).
type agentProcess struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string // its stderr: the JSON log
	done chan error
}

func startAgentProcess(t *testing.T, name, cfgFile string) *agentProcess {
	t.Helper()
	p := &agentProcess{t: t, name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan error, 1)}
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestBerthProcess$")
	p.cmd.Env = append(os.Environ(), "BERTH_TEST_COMMAND=agent --config "+cfgFile)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			out, _ := os.ReadFile(p.log)
			t.Logf("log of agent %s:\n%s", p.name, out)
		}
	})
	return p
}

// TestBerthProcess runs the berth command of BERTH_TEST_COMMAND, for the
// tests that need an agent in a process of its own.
func TestBerthProcess(t *testing.T) {
	args := os.Getenv("BERTH_TEST_COMMAND")
	if args == "" {
		return // only as a child of another test
	}
	os.Exit(dispatch(strings.Fields(args), os.Stdout, os.Stderr))
}

// awaitLog waits until the agent's log has a line with text.
func (p *agentProcess) awaitLog(text string, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if out, _ := os.ReadFile(p.log); bytes.Contains(out, []byte(text)) {
			return
		}
		select {
		case err := <-p.done:
			p.done <- err
			p.t.Fatalf("agent %s exited (%v) before logging %q", p.name, err, text)
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("agent %s did not log %q within %s", p.name, text, within)
}

// awaitExit waits until the agent exits and checks that it exited 0.
func (p *agentProcess) awaitExit(within time.Duration) {
	p.t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			p.t.Fatalf("agent %s exited with %v, want 0", p.name, err)
		}
	case <-time.After(within):
		p.t.Fatalf("agent %s did not exit within %s of the takeover", p.name, within)
	}
}

// TestAgentRestartsInPlace: a second `berth agent` of the same config takes
// over from the first (systemd style: new process first, then the old one
// exits 0) under a steady load of keep-alive and fresh-connection clients,
// and no request fails. Connections made while the new agent is frozen
// (SIGSTOP) after the old one has closed its sockets and exited wait in the
// accept queue and are answered when it resumes: the old agent's close
// resets none of them.
func TestAgentRestartsInPlace(t *testing.T) {
	backend := serveBackend(t)
	dir := t.TempDir()
	web, admin := freeport.TCP(t), freeport.TCP(t)
	cfgFile := filepath.Join(dir, "berth.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`node: {name: test-upgrade, advertise: 127.0.0.1}
docker: {enabled: false}
cluster: {enabled: false}
admin: {listen: %s}
upgrade: {socket: %s}
listeners:
  - {name: web, protocol: http, address: %s, default: {forward: web}}
static:
  web: [%s]
`, admin, filepath.Join(dir, "run", "upgrade.sock"), web, backend)), 0o644)
	url := "http://" + web + "/"

	first := startAgentProcess(t, "first", cfgFile)
	first.awaitLog("agent: serving", 30*time.Second)
	load := loadtest.Start(url, 200)
	time.Sleep(time.Second) // load before the takeover: what it counts must never fail

	second := startAgentProcess(t, "second", cfgFile)
	second.awaitLog("agent: took over", 30*time.Second)
	second.cmd.Process.Signal(syscall.SIGSTOP)
	first.awaitExit(40 * time.Second)
	// Nothing accepts now: the old agent is gone, the new one frozen.
	queued := make([]net.Conn, 20)
	for i := range queued {
		c, err := net.DialTimeout("tcp", web, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d while the new agent is frozen: %v", i, err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /queued HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
		queued[i] = c
	}
	time.Sleep(200 * time.Millisecond) // the load queues up behind them too
	second.cmd.Process.Signal(syscall.SIGCONT)
	for i, c := range queued {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("queued connection %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	second.awaitLog("agent: serving", 10*time.Second)
	time.Sleep(time.Second)

	// The second agent serves the control socket in turn: a third takes over.
	third := startAgentProcess(t, "third", cfgFile)
	third.awaitLog("agent: took over", 30*time.Second)
	second.awaitExit(40 * time.Second)
	time.Sleep(time.Second)

	res := load.Stop()
	t.Logf("load: %d answered, %d failed; %d connections queued while no agent accepted, all answered", res.OK, res.Failed, len(queued))
	if res.Failed > 0 {
		t.Fatalf("%d requests failed across two takeovers: %v", res.Failed, res.Errors)
	}
	if res.OK == 0 {
		t.Fatal("no request was answered")
	}
	third.cmd.Process.Signal(syscall.SIGTERM)
	third.awaitExit(40 * time.Second)
}

// serveBackend is a target on loopback that answers 200 to everything.
func serveBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "backend")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
