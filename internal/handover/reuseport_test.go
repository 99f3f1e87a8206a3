package handover

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReusePortLosesTheQueue measures what docs/rollout.md builds on: with
// SO_REUSEPORT (the alternative to a hand-over), each process has a socket
// and an accept queue of its own, and the kernel spreads new connections
// over them. When the old process closes its socket, the connections
// waiting in its queue are reset, unless net.ipv4.tcp_migrate_req moves
// them to the other socket (off by default). A hand-over shares one socket
// and one queue instead (TestHandOverSharesTheKernelSocket).
func TestReusePortLosesTheQueue(t *testing.T) {
	migrate, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	if err != nil {
		t.Fatalf("reading tcp_migrate_req: %v", err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return serr
	}}
	old, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	successor, err := lc.Listen(context.Background(), "tcp", old.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer successor.Close()

	// Neither accepts: every connection waits in one of the two queues.
	const n = 64
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", old.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("x"))
		conns[i] = c
	}
	old.Close()

	accepted := 0
	successor.(*net.TCPListener).SetDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		c, err := successor.Accept()
		if err != nil {
			break
		}
		accepted++
		defer c.Close() // open until the count: closing with "x" unread would reset it too
	}
	// Read all at once: a read past its deadline reports the timeout, not a
	// reset that came meanwhile.
	results := make(chan error, n)
	for _, c := range conns {
		go func() {
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			results <- err
		}()
	}
	reset := 0
	for range n {
		if errors.Is(<-results, syscall.ECONNRESET) {
			reset++
		}
	}
	t.Logf("tcp_migrate_req=%s: of %d queued connections, %d reset when the old socket closed, %d accepted by the other", strings.TrimSpace(string(migrate)), n, reset, accepted)
	if strings.TrimSpace(string(migrate)) == "0" && reset == 0 {
		t.Fatal("no queued connection was reset: the kernel moved them, and docs/rollout.md's reason for the hand-over no longer holds")
	}
	if reset+accepted != n {
		t.Fatalf("%d reset + %d accepted, want %d in all", reset, accepted, n)
	}
}
