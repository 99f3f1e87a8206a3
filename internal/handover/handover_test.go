package handover

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var hostA = Identity{Node: "host-a", Admin: "127.0.0.1:9900"}

// recorder is a Handler that offers dups of real sockets and records the
// calls it gets.
type recorder struct {
	offer []Socket
	calls []string
}

func (r *recorder) Sockets() ([]Socket, error) {
	r.calls = append(r.calls, "sockets")
	return r.offer, nil
}
func (r *recorder) Release() error { r.calls = append(r.calls, "release"); return nil }
func (r *recorder) Ready() error   { r.calls = append(r.calls, "ready"); return nil }

func listenTCP(t *testing.T) (*net.TCPListener, *os.File) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	return ln, f
}

func serve(t *testing.T, h Handler) (*Server, chan error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "upgrade.sock")
	s, err := Listen(path, hostA, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	done := make(chan error, 1)
	go func() { done <- s.Serve(h) }()
	return s, done
}

// TestHandOverSharesTheKernelSocket: a connection made to the old agent's
// listener before the hand-over, still in its accept queue, is accepted by
// the new one after the old one closed its descriptor.
func TestHandOverSharesTheKernelSocket(t *testing.T) {
	ln, lnFile := listenTCP(t)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpFile, _ := udp.File()
	h := &recorder{offer: []Socket{{Entry{"web", "127.0.0.1:0", NetworkTCP}, lnFile}, {Entry{"dns", "127.0.0.1:0", NetworkUDP}, udpFile}}}
	s, done := serve(t, h)

	queued, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.Path(), hostA)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := c.Sockets()
	if len(got) != 2 || got[0].Entry != h.offer[0].Entry || got[1].Entry != h.offer[1].Entry {
		t.Fatalf("received %+v", got)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve after the takeover: %v", err)
	}
	if strings.Join(h.calls, ",") != "sockets,release,ready" {
		t.Fatalf("handler calls %v", h.calls)
	}
	ln.Close() // the old agent stops accepting

	inherited, err := net.FileListener(got[0].File)
	if err != nil {
		t.Fatal(err)
	}
	defer inherited.Close()
	if inherited.Addr().String() != ln.Addr().String() {
		t.Fatalf("inherited %s, want %s", inherited.Addr(), ln.Addr())
	}
	inherited.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	accepted, err := inherited.Accept()
	if err != nil {
		t.Fatalf("the connection queued before the hand-over: %v", err)
	}
	accepted.Close()
	pc, err := net.FilePacketConn(got[1].File)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if pc.LocalAddr().String() != udp.LocalAddr().String() {
		t.Fatalf("inherited %s, want %s", pc.LocalAddr(), udp.LocalAddr())
	}
	// The successor's control socket replaces the old one's at the path.
	next, err := Listen(s.Path(), hostA, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	s.Close()
	if _, err := os.Lstat(s.Path()); err != nil {
		t.Fatalf("the old agent's Close removed its successor's socket: %v", err)
	}
}

func TestControlSocketIsPrivate(t *testing.T) {
	s, _ := serve(t, &recorder{})
	for path, want := range map[string]os.FileMode{s.Path(): 0o600, filepath.Dir(s.Path()): 0o700} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), want)
		}
	}
}

func TestNoPredecessor(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: stale, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a crashed agent's file: nothing listens on it
	for _, path := range []string{filepath.Join(dir, "missing.sock"), stale} {
		if _, err := Dial(context.Background(), path, hostA); !errors.Is(err, ErrNoPredecessor) {
			t.Errorf("Dial(%s) = %v, want ErrNoPredecessor", path, err)
		}
	}
}

// TestRefusesBadPeers: a peer that speaks out of turn, another protocol, or
// sends descriptors it should not, is told why and gets nothing; the old
// agent goes on and serves the next, well-behaved, new agent.
func TestRefusesBadPeers(t *testing.T) {
	_, lnFile := listenTCP(t)
	h := &recorder{offer: []Socket{{Entry{"web", "127.0.0.1:0", NetworkTCP}, lnFile}}}
	s, _ := serve(t, h)
	devNull, _ := os.Open(os.DevNull)
	defer devNull.Close()
	for _, tc := range []struct {
		name  string
		send  []byte
		files []*os.File
		want  string
	}{
		{"ready before hello", []byte("BHO1\x05"), nil, "message type 5 where 1 belongs"},
		{"another node", []byte("BHO1\x01\x06host-b\x0e127.0.0.1:9900"), nil, "the new agent is node host-b with its admin API on 127.0.0.1:9900, this one node host-a on 127.0.0.1:9900"},
		{"another admin address", []byte("BHO1\x01\x06host-a\x0e127.0.0.1:9901"), nil, "the new agent is node host-a with its admin API on 127.0.0.1:9901"},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), nil, "not a berth hand-over message"},
		{"descriptors with hello", []byte("BHO1\x01\x06host-a\x0e127.0.0.1:9900"), []*os.File{devNull}, "1 descriptors came with 0 socket entries"},
		{"sockets to the old agent", sockets("web", "0.0.0.0:80", "tcp"), []*os.File{devNull}, "not a socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("unixpacket", s.Path())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			c := conn{nc.(*net.UnixConn)}
			var oob []byte
			if len(tc.files) > 0 {
				oob = syscall.UnixRights(int(tc.files[0].Fd()))
			}
			if _, _, err := c.c.WriteMsgUnix(tc.send, oob, nil); err != nil {
				t.Fatal(err)
			}
			_, socks, err := c.recv(time.Now().Add(5 * time.Second))
			if err == nil || !strings.Contains(err.Error(), "the peer refused") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("answer %v (sockets %v), want a refusal with %q", err, socks, tc.want)
			}
		})
	}
	c, err := Dial(context.Background(), s.Path(), hostA)
	if err != nil {
		t.Fatalf("a well-behaved agent after the bad ones: %v", err)
	}
	defer c.Close()
	if len(c.Sockets()) != 1 {
		t.Fatalf("received %d sockets, want 1", len(c.Sockets()))
	}
}

// TestRefusesAnotherUser: even through a socket file others may open, a
// peer of another uid is refused (SO_PEERCRED) and receives no descriptor.
func TestRefusesAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a peer as another user") // the machines of make test run as root
	}
	_, lnFile := listenTCP(t)
	s, _ := serve(t, &recorder{offer: []Socket{{Entry{"web", "127.0.0.1:0", NetworkTCP}, lnFile}}})
	os.Chmod(s.Path(), 0o666)
	os.Chmod(filepath.Dir(s.Path()), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(s.Path())), 0o755)
	bin := filepath.Join(t.TempDir(), "peer.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(bin)), 0o755) // t.TempDir's parent, shared by the test's directories
	cmd := exec.Command(bin, "-test.run=^TestPeerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "HANDOVER_PEER_PATH="+s.Path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("peer: exit %v", err)
	if !strings.Contains(string(out), "peer: handover: the peer refused: handover: the peer (pid") || !strings.Contains(string(out), "runs as uid 65534") {
		t.Fatalf("the peer of uid 65534 got:\n%s", out)
	}
}

// TestPeerProcess is the other user's agent of TestRefusesAnotherUser.
func TestPeerProcess(t *testing.T) {
	path := os.Getenv("HANDOVER_PEER_PATH")
	if path == "" {
		return // run as a helper only
	}
	// The server runs as root: this side's own check would refuse it first.
	nc, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatalf("peer: %v", err)
	}
	c := conn{nc.(*net.UnixConn)}
	c.send(message{kind: msgHello, who: hostA}, nil)
	_, socks, err := c.recv(time.Now().Add(5 * time.Second))
	t.Logf("peer: %v (%d sockets) uid %s", err, len(socks), strconv.Itoa(os.Getuid()))
	if err == nil {
		t.Fatal("peer: received sockets")
	}
}
