package balancer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-lb/berth/balancer/l4"
	"github.com/berth-lb/berth/balancer/stats"
)

// tcpServer serves every connection of a loopback listener with handle.
func tcpServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// namedEcho says its name on a line, then echoes every byte until EOF. It
// copies through a buffer, never by splice, so TestTCPProxyingSplices counts
// the balancer's pipes alone.
func namedEcho(name string) func(net.Conn) {
	return func(c net.Conn) {
		io.WriteString(c, name+"\n")
		io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c})
	}
}

func l4Config(protocol string, targets ...TargetConfig) Config {
	return Config{
		AccessLog: AccessLogOff,
		Listeners: []ListenerConfig{{Name: "l4", Protocol: protocol, Address: "127.0.0.1:0", Default: Action{Forward: "app"}}},
		Groups:    []GroupConfig{{Name: "app", Targets: targets, ConnectTimeout: time.Second}},
	}
}

// dial connects to addr for the rest of the test, with 5 s for all it does.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// dialName connects through the balancer and reads the target's name line.
func dialName(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c := dial(t, addr)
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the target's name: %v", err)
	}
	return c, r, strings.TrimSpace(name)
}

func echoLine(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: got %q, %v", line, got, err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTCPRoundRobinEchoAndCounters(t *testing.T) {
	a, b := tcpServer(t, namedEcho("a")), tcpServer(t, namedEcho("b"))
	lb := start(t, l4Config(ProtocolTCP, serving("a", a), serving("b", b)))
	addr := lb.Addr("l4")
	var names []string
	for i := range 4 {
		c, r, name := dialName(t, addr)
		echoLine(t, c, r, strings.Repeat("x", i+1))
		c.Close()
		names = append(names, name)
	}
	if names[0] == names[1] || names[0] != names[2] || names[1] != names[3] {
		t.Errorf("targets in turn: got %v", names)
	}
	eventually(t, "connections to close", func() bool { return lb.InFlight("a")+lb.InFlight("b") == 0 })
	var conns, in, out uint64
	for _, ts := range lb.Targets() {
		conns += ts.Connections
		in += ts.BytesIn
		out += ts.BytesOut
	}
	// 1+2+3+4 bytes and 4 newlines from the clients; the same back plus the names.
	if conns != 4 || in != 14 || out != 14+8 {
		t.Errorf("target counters: connections %d, bytes in %d, out %d; want 4, 14, 22", conns, in, out)
	}
	r := lb.Routes()
	if len(r) != 1 || r[0].Connections != 4 || r[0].ActiveConnections != 0 || r[0].BytesIn != 14 || r[0].BytesOut != 22 {
		t.Errorf("route counters: %+v", r)
	}
	ls := lb.Listeners()
	if ls[0].Protocol != ProtocolTCP || ls[0].TotalConnections != 4 || ls[0].BytesIn != 14 || ls[0].BytesOut != 22 {
		t.Errorf("listener counters: %+v", ls[0])
	}
}

func TestTCPHalfCloseBothWays(t *testing.T) {
	// The target reads until the client's EOF, then answers and half-closes
	// in turn: the answer must arrive after the client stopped sending.
	target := tcpServer(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		io.WriteString(c, "read "+strconv.Itoa(int(n))+" bytes")
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	lb := start(t, l4Config(ProtocolTCP, serving("t", target)))
	c := dial(t, lb.Addr("l4"))
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "read 5 bytes" {
		t.Fatalf("after a half-close: got %q, %v", got, err)
	}
}

func TestTCPConnectRetryOnAnotherTarget(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // refused from now on
	live := tcpServer(t, namedEcho("live"))
	lb := start(t, l4Config(ProtocolTCP, serving("dead", deadAddr), serving("live", live)))
	for range 4 {
		if _, _, name := dialName(t, lb.Addr("l4")); name != "live" {
			t.Fatalf("got %q, want live", name)
		}
	}
	for _, ts := range lb.Targets() {
		if ts.ID == "dead" && ts.Failures == 0 {
			t.Error("the refused target counts no failure")
		}
	}
}

func TestTCPNoTargetResets(t *testing.T) {
	lb := start(t, l4Config(ProtocolTCP))
	// The reset may come before the client's dial returns.
	if c, err := net.Dial("tcp", lb.Addr("l4")); err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a connection without target stays open")
		}
	}
	eventually(t, "the refusal to be counted", func() bool { return lb.Listeners()[0].Errors[stats.ReasonNoTarget] == 1 })
}

func TestTCPResetAfterDataIsPassedOn(t *testing.T) {
	// The target answers and resets at once, so the answer and the reset
	// usually wait together on the balancer's socket when it first reads:
	// the client gets a reset (its kernel may drop the answer it has not
	// read yet) within l4.ResetCheck. On a busy machine the reset can reach
	// the client before its dial returns: the dial then fails with it.
	target := tcpServer(t, func(c net.Conn) {
		io.WriteString(c, "bye")
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	lb := start(t, l4Config(ProtocolTCP, serving("t", target)))
	for range 5 {
		start := time.Now()
		c, err := net.Dial("tcp", lb.Addr("l4"))
		var got []byte
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			got, err = io.ReadAll(c)
			c.Close()
		}
		if !errors.Is(err, syscall.ECONNRESET) || (len(got) > 0 && string(got) != "bye") {
			t.Fatalf("got %q, %v; want the answer or less, then a reset", got, err)
		}
		if d := time.Since(start); d > l4.ResetCheck+time.Second {
			t.Fatalf("reset passed on after %s", d)
		}
	}
}

// pipeFDs counts this process's open pipe descriptors.
func pipeFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if dest, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(dest, "pipe:") {
			n++
		}
	}
	return n
}

// TestTCPProxyingSplices proves that both directions of a TCP connection are
// moved by splice(2): Go's splice path holds a pipe (two descriptors) for as
// long as a copy between two *net.TCPConn waits, and a copy through a
// buffer, which any wrapper of either connection causes, holds none.
func TestTCPProxyingSplices(t *testing.T) {
	target := tcpServer(t, namedEcho("t"))
	lb := start(t, l4Config(ProtocolTCP, serving("t", target)))
	// Pipes of earlier tests wait in Go's pipe pool until a GC closes them:
	// empty it so that they cannot vanish during the count.
	for range 3 {
		runtime.GC()
	}
	before := pipeFDs(t)
	const conns = 3
	for range conns {
		c, r, _ := dialName(t, lb.Addr("l4"))
		// A stream (a read that fills the first-phase buffer, both ways)
		// switches a connection from read/write to splice.
		echoLine(t, c, r, strings.Repeat("x", 2*l4.SmallCopyBuffer))
	}
	want := before + conns*2*2 // per connection, two directions, a pipe of two descriptors each
	eventually(t, "a splice pipe per direction", func() bool { return pipeFDs(t) >= want })
}

func TestIdleTimeoutCountsBothDirections(t *testing.T) {
	// The target talks every 50 ms for 600 ms while the client says nothing:
	// the connection is not idle. Then both are quiet: it closes.
	target := tcpServer(t, func(c net.Conn) {
		for range 12 {
			io.WriteString(c, ".")
			time.Sleep(50 * time.Millisecond)
		}
		io.Copy(io.Discard, c)
	})
	cfg := l4Config(ProtocolTCP, serving("t", target))
	cfg.Listeners[0].IdleTimeout = 200 * time.Millisecond
	lb := start(t, cfg)
	c := dial(t, lb.Addr("l4"))
	start := time.Now()
	got, _ := io.ReadAll(c)
	if string(got) != strings.Repeat(".", 12) {
		t.Errorf("got %q before the close, want 12 dots", got)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %s; want the 600 ms of talk plus about the 200 ms idle timeout", d)
	}
}

func TestProxyProtocolV2(t *testing.T) {
	type seen struct {
		src, dst netip.AddrPort
		err      error
	}
	headers := make(chan seen, 1)
	target := tcpServer(t, func(c net.Conn) {
		src, dst, err := readProxyV2(c)
		headers <- seen{src, dst, err}
		io.Copy(c, c)
	})
	cfg := l4Config(ProtocolTCP, serving("t", target))
	cfg.Groups[0].ProxyProtocol = true
	lb := start(t, cfg)
	c := dial(t, lb.Addr("l4"))
	io.WriteString(c, "after the header\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "after the header\n" {
		t.Fatalf("echo after the header: %q, %v", line, err)
	}
	h := <-headers
	if h.err != nil {
		t.Fatal(h.err)
	}
	if want := c.LocalAddr().(*net.TCPAddr).AddrPort(); h.src != want {
		t.Errorf("source %s, want the client's %s", h.src, want)
	}
	if want := c.RemoteAddr().(*net.TCPAddr).AddrPort(); h.dst != want {
		t.Errorf("destination %s, want the listener's %s", h.dst, want)
	}
}

// readProxyV2 parses a proxy protocol v2 header as a target would.
func readProxyV2(r io.Reader) (src, dst netip.AddrPort, err error) {
	head := make([]byte, 16)
	if _, err := io.ReadFull(r, head); err != nil {
		return src, dst, err
	}
	if string(head[:12]) != l4.ProxyV2Signature || head[12] != 0x21 {
		return src, dst, errors.New("no proxy protocol v2 PROXY header")
	}
	body := make([]byte, binary.BigEndian.Uint16(head[14:]))
	if _, err := io.ReadFull(r, body); err != nil {
		return src, dst, err
	}
	var size int
	switch head[13] {
	case 0x11, 0x12:
		size = 4
	case 0x21, 0x22:
		size = 16
	default:
		return src, dst, errors.New("unexpected address family")
	}
	if len(body) < 2*size+4 {
		return src, dst, errors.New("short address block")
	}
	s, _ := netip.AddrFromSlice(body[:size])
	d, _ := netip.AddrFromSlice(body[size : 2*size])
	return netip.AddrPortFrom(s, binary.BigEndian.Uint16(body[2*size:])), netip.AddrPortFrom(d, binary.BigEndian.Uint16(body[2*size+2:])), nil
}

func TestL4DrainingAndTerminate(t *testing.T) {
	a, b := tcpServer(t, namedEcho("a")), tcpServer(t, namedEcho("b"))
	cfg := l4Config(ProtocolTCP, serving("a", a), serving("b", b))
	cfg.Groups[0].Algorithm = AlgorithmLeastOutstanding
	lb := start(t, cfg)
	addr := lb.Addr("l4")
	long := map[string]net.Conn{}
	readers := map[string]*bufio.Reader{}
	for range 2 {
		c, r, name := dialName(t, addr)
		long[name], readers[name] = c, r
		c.SetDeadline(time.Time{})
	}
	if long["a"] == nil || long["b"] == nil {
		t.Fatalf("least connections should spread two connections over both targets: %v", long)
	}

	// a drains: new connections go to b, a's open one keeps working.
	cfg.Groups[0].Targets[0].Serving = false
	if err := lb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, name := dialName(t, addr); name != "b" {
			t.Fatalf("a new connection reached %s while a drains", name)
		}
	}
	echoLine(t, long["a"], readers["a"], "still here")
	if n := lb.InFlight("a"); n != 1 {
		t.Errorf("a has %d open connections, want 1", n)
	}

	// The deregistration delay ends with connection termination.
	if n := lb.Terminate("a"); n != 1 {
		t.Errorf("Terminate closed %d connections, want 1", n)
	}
	long["a"].SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := readers["a"].ReadString('\n'); err == nil {
		t.Error("the terminated connection still reads")
	}
	eventually(t, "a's connection count to drop", func() bool { return lb.InFlight("a") == 0 })
	echoLine(t, long["b"], readers["b"], "b untouched")
}

func TestTerminateClosesBusyHTTPConnections(t *testing.T) {
	arrived := make(chan struct{}, 1)
	slow := backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // the request context ends with the connection only once the body is read
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	lb := start(t, webConfig(serving("slow", addrOf(slow))))
	done := make(chan int, 1)
	go func() {
		// A POST is never retried: the client sees what Terminate did.
		resp, err := http.Post("http://"+lb.Addr("web")+"/", "text/plain", strings.NewReader("body"))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// In flight counts from before the connect; the target having the request
	// means its connection is busy, which is what Terminate closes.
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the target")
	}
	if n := lb.Terminate("slow"); n != 1 {
		t.Errorf("Terminate closed %d connections, want 1", n)
	}
	if code := <-done; code != 502 {
		t.Errorf("the client got %d, want 502", code)
	}
	if n := lb.Terminate("unknown"); n != 0 {
		t.Errorf("Terminate of an unknown target closed %d", n)
	}
}

// testPKI is a CA and leaf certificates it signed, written to files.
type testPKI struct {
	dir  string
	key  *ecdsa.PrivateKey
	ca   *x509.Certificate
	pool *x509.CertPool
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{dir: t.TempDir(), key: key, ca: ca, pool: pool}
}

// leaf issues a certificate for name and returns its files.
func (p *testPKI) leaf(t testing.TB, name string) Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := Certificate{CertFile: filepath.Join(p.dir, name+".crt"), KeyFile: filepath.Join(p.dir, name+".key")}
	os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return c
}

// tlsServer terminates TLS with cert and serves namedEcho(name).
func tlsServer(t *testing.T, cert Certificate, name string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
	return tcpServer(t, func(c net.Conn) { namedEcho(name)(tls.Server(c, cfg)) })
}

// dialTLS connects through the balancer as serverName and returns the
// subject of the certificate the client was shown and the first line.
func dialTLS(t *testing.T, addr, serverName string, pool *x509.CertPool) (string, string) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: serverName, RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS to %s as %s: %v", addr, serverName, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	echoLine(t, c, r, "over tls")
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, strings.TrimSpace(line)
}

func TestTLSPassthroughBySNI(t *testing.T) {
	pki := newTestPKI(t)
	a := tlsServer(t, pki.leaf(t, "a.example.com"), "group-a")
	b := tlsServer(t, pki.leaf(t, "api.b.example.org"), "group-b")
	cfg := Config{
		AccessLog: AccessLogOff,
		Listeners: []ListenerConfig{{Name: "tls", Protocol: ProtocolTLS, Address: "127.0.0.1:0",
			Rules:   []Rule{{Priority: 10, Hosts: []string{"*.b.example.org"}, Action: Action{Forward: "b"}}},
			Default: Action{Forward: "a"}}},
		Groups: []GroupConfig{{Name: "a", Targets: []TargetConfig{serving("a", a)}}, {Name: "b", Targets: []TargetConfig{serving("b", b)}}},
	}
	lb := start(t, cfg)
	tests := []struct{ sni, cert, group string }{
		{"a.example.com", "a.example.com", "group-a"},         // the default group
		{"API.b.example.org", "api.b.example.org", "group-b"}, // SNI is case-insensitive
	}
	for _, tt := range tests {
		cert, group := dialTLS(t, lb.Addr("tls"), tt.sni, pki.pool)
		if cert != tt.cert || group != tt.group {
			t.Errorf("SNI %s: certificate %s from %s, want %s from %s", tt.sni, cert, group, tt.cert, tt.group)
		}
	}
}

func TestTLSPassthroughRefusesWhatIsNotTLS(t *testing.T) {
	target := tcpServer(t, namedEcho("t"))
	lb := start(t, l4Config(ProtocolTLS, serving("t", target)))
	c := dial(t, lb.Addr("l4"))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatalf("plain text reached the target (%d bytes back)", n)
	}
}

func TestTLSTerminationPicksCertificateBySNI(t *testing.T) {
	pki := newTestPKI(t)
	plain := tcpServer(t, namedEcho("plain"))
	cfg := l4Config(ProtocolTLS, serving("p", plain))
	cfg.Listeners[0].Certificates = []Certificate{pki.leaf(t, "one.example.com"), pki.leaf(t, "two.example.com")}
	lb := start(t, cfg)
	for _, name := range []string{"one.example.com", "two.example.com"} {
		cert, line := dialTLS(t, lb.Addr("l4"), name, pki.pool)
		if cert != name || line != "plain" {
			t.Errorf("SNI %s: certificate %s, target said %q", name, cert, line)
		}
	}
	cfg.Listeners[0].Certificates = []Certificate{{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}}
	if err := lb.Apply(cfg); err == nil || !strings.Contains(err.Error(), "/nonexistent.crt") {
		t.Errorf("a missing certificate file: %v", err)
	}
}

func udpEcho(t *testing.T, prefix string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(prefix), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestUDPFlows(t *testing.T) {
	a, b := udpEcho(t, "a:"), udpEcho(t, "b:")
	cfg := l4Config(ProtocolUDP, serving("a", a), serving("b", b))
	cfg.Listeners[0].IdleTimeout = 300 * time.Millisecond
	lb := start(t, cfg)
	addr := lb.Addr("l4")
	exchange := func(c net.Conn, msg string) string {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	c1, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	first := exchange(c1, "one")
	for range 3 { // a flow sticks to its target
		if got := exchange(c1, "one"); got != first {
			t.Fatalf("one flow reached two targets: %q then %q", first, got)
		}
	}
	if other := exchange(c2, "two"); other[:2] == first[:2] {
		t.Errorf("two flows went to one target under round robin: %q, %q", first, other)
	}
	if n := lb.Listeners()[0].ActiveConnections; n != 2 {
		t.Errorf("%d active flows, want 2", n)
	}
	eventually(t, "the idle flows to end", func() bool { return lb.Listeners()[0].ActiveConnections == 0 })

	// A full table drops new flows and counts them; max-connections bounds
	// it, and a reload changes it on the open listener.
	cfg.Listeners[0].MaxConnections = 1
	if err := lb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	exchange(c1, "fills the table")
	c2.Write([]byte("dropped"))
	eventually(t, "the dropped flow to be counted", func() bool { return lb.Listeners()[0].UDPFlowsDropped == 1 })
	var in, out uint64
	for _, ts := range lb.Targets() {
		in += ts.BytesIn
		out += ts.BytesOut
	}
	if in != 3+3*3+3+15 || out != in+2*6 {
		t.Errorf("bytes in %d, out %d", in, out)
	}
}

func TestAccessLogLinePerConnection(t *testing.T) {
	target := tcpServer(t, namedEcho("t"))
	cfg := l4Config(ProtocolTCP, serving("t", target))
	cfg.AccessLog = filepath.Join(t.TempDir(), "access.log")
	lb := New(nil)
	if err := lb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	c, r, _ := dialName(t, lb.Addr("l4"))
	echoLine(t, c, r, "logged")
	c.Close()
	eventually(t, "the connection to end", func() bool { return lb.InFlight("t") == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lb.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("not one JSON line: %q: %v", data, err)
	}
	if rec["listener"] != "l4" || rec["target"] != "t" || rec["result"] != "ok" || rec["bytes_in"] != 7.0 || rec["bytes_out"] != 9.0 {
		t.Errorf("access log line: %s", data)
	}
}

func TestSourceHashKeepsAClientOnOneTarget(t *testing.T) {
	a, b := tcpServer(t, namedEcho("a")), tcpServer(t, namedEcho("b"))
	cfg := l4Config(ProtocolTCP, serving("a", a), serving("b", b))
	cfg.Groups[0].Algorithm = AlgorithmSourceHash
	lb := start(t, cfg)
	_, _, first := dialName(t, lb.Addr("l4"))
	for range 5 {
		if _, _, name := dialName(t, lb.Addr("l4")); name != first {
			t.Fatalf("one client address reached %s and %s", first, name)
		}
	}
}

func TestL4ConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		l    ListenerConfig
		want string
	}{
		{"tcp rules", ListenerConfig{Protocol: ProtocolTCP, Rules: []Rule{{Priority: 1, Hosts: []string{"a"}, Action: Action{Forward: "app"}}}}, "has no rules"},
		{"tls path", ListenerConfig{Protocol: ProtocolTLS, Rules: []Rule{{Priority: 1, Paths: []string{"/a"}, Action: Action{Forward: "app"}}}}, "hosts (SNI) only"},
		{"udp fixed", ListenerConfig{Protocol: ProtocolUDP, Default: Action{Fixed: &FixedResponse{Status: 200}}}, "forwards only"},
		{"http certs", ListenerConfig{Certificates: []Certificate{{CertFile: "c", KeyFile: "k"}}}, "need protocol https or tls"},
		{"unknown", ListenerConfig{Protocol: "sctp"}, "unknown protocol"},
		{"max connections", ListenerConfig{Protocol: ProtocolTCP, MaxConnections: -2}, "max connections -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.l.Name, tt.l.Address = "l", "127.0.0.1:0"
			err := New(nil).Apply(Config{AccessLog: AccessLogOff, Listeners: []ListenerConfig{tt.l}, Groups: []GroupConfig{{Name: "app"}}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestProxyHeaderV2Families(t *testing.T) {
	tests := []struct {
		name     string
		src, dst net.Addr
		family   byte
	}{
		{"ipv4", &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 5000}, &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 80}, 0x11},
		{"ipv6", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5000}, &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 443}, 0x21},
		{"mixed", &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 5000}, &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 443}, 0x21},
		{"udp", &net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 53}, &net.UDPAddr{IP: net.ParseIP("10.0.0.2"), Port: 53}, 0x12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := l4.AppendProxyHeaderV2(nil, tt.src, tt.dst)
			if h[13] != tt.family {
				t.Errorf("family byte %#x, want %#x", h[13], tt.family)
			}
			src, dst, err := readProxyV2(bytes.NewReader(h))
			if err != nil {
				t.Fatal(err)
			}
			wantSrc, _ := l4.AddrPort(tt.src)
			wantDst, _ := l4.AddrPort(tt.dst)
			if src.Addr().Unmap() != wantSrc.Addr() || src.Port() != wantSrc.Port() || dst.Addr().Unmap() != wantDst.Addr() || dst.Port() != wantDst.Port() {
				t.Errorf("parsed %s -> %s, want %s -> %s", src, dst, wantSrc, wantDst)
			}
		})
	}
}

// BenchmarkL4KeepAlive sends one small request at a time on one connection
// through a tcp listener to a raw backend, as vs-peers --mode tcp does with
// 64 of them: ns/op is a round trip's latency, and under callgrind the
// instructions per op are the L4 path's cost of a request and its answer.
func BenchmarkL4KeepAlive(b *testing.B) {
	lb := start(b, l4Config(ProtocolTCP, serving("a", namedRawBackend(b, "ok\n"))))
	roundTrips(b, lb.Addr("l4"), "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")
}
