package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/dockertest"
)

func TestAgentRefusesABadConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "berth.yaml")
	os.WriteFile(file, []byte("listeners:\n  - name: web\n    protocol: http\n    port: 99999\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"agent", "--config", file}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	for _, want := range []string{"listeners[0].port", "the agent does not start with a bad config"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestAgentRejectsBadFlags(t *testing.T) {
	cases := [][]string{
		{"agent", "--log-level", "loud"},
		{"agent", "extra"},
		{"agent", "--no-such-flag"},
	}
	for _, args := range cases {
		var stdout, stderr bytes.Buffer
		if code := dispatch(args, &stdout, &stderr); code == 0 {
			t.Errorf("%v: exit code 0", args)
		}
	}
}

// refusedStart runs `berth agent` with a config file of yaml and answers its
// stderr once it exits 1, or fails the test when it is still running after a
// few seconds: these agents must refuse to start.
func refusedStart(t *testing.T, yaml string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- dispatch([]string{"agent", "--config", file}, io.Discard, stderr) }()
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the agent started; stderr:\n%s", stderr)
	}
	return stderr.String()
}

const agentBase = "node: {name: test, advertise: 127.0.0.1}\ndocker: {enabled: false}\ncluster: {enabled: false}\n"

func TestAgentRefusesAnAdminAPIBeyondLoopbackWithoutAToken(t *testing.T) {
	stderr := refusedStart(t, agentBase+"admin: {listen: \"0.0.0.0:0\"}\n")
	for _, want := range []string{"admin.token-file: is required because admin.listen 0.0.0.0:0 is not a loopback address", "admin.insecure: true", "head -c 32 /dev/urandom | base64"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestAgentRefusesAnUnusableTokenFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tests := []struct{ file, want string }{
		{empty, "berth agent: agent: admin.token-file: the token file " + empty + " is empty; make one with: head -c 32 /dev/urandom | base64"},
		{filepath.Join(dir, "missing"), "berth agent: agent: admin.token-file: cannot read the token file " + filepath.Join(dir, "missing") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			stderr := refusedStart(t, agentBase+"admin: {listen: \"127.0.0.1:0\", token-file: "+tt.file+"}\n")
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

// admin.insecure starts the agent, and says at every start what it allows.
func TestAgentWarnsOfAnInsecureAdminAPI(t *testing.T) {
	file := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(file, []byte(agentBase+"admin: {listen: \"0.0.0.0:0\", insecure: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- dispatch([]string{"agent", "--config", file}, io.Discard, stderr) }()
	dockertest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(stderr.String(), "agent: serving") }, "the agent did not start; stderr:\n%s", stderr)
	// runAgent stops on SIGINT, which it has subscribed to by now.
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if want := `"level":"WARN","msg":"agent: the admin API listens beyond loopback without a token (admin.insecure: true)`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
}

// lockedBuffer is a bytes.Buffer the agent writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
