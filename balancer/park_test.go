package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openParked opens n keep-alive connections to addr with a request each,
// and waits until they are parked.
func openParked(t *testing.T, addr string, n int) ([]net.Conn, []*bufio.Reader) {
	t.Helper()
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		conns[i] = dial(t, addr)
		readers[i] = bufio.NewReader(conns[i])
		requestOn(t, conns[i], readers[i])
	}
	waitParked(t)
	return conns, readers
}

// waitParked waits until no goroutine serves a client connection: the idle
// ones are parked (idlepark).
func waitParked(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	eventually(t, "the idle connections to park", func() bool {
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "httpfront.(*ClientConn)")
	})
}

func requestOn(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	readOK(t, c, r)
}

// readOK reads the target's answer "ok" from c.
func readOK(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

// TestParkedConnectionsServeAndShutDown: idle keep-alive connections hold no
// goroutine, each serves its next request, and a shutdown closes them at once.
func TestParkedConnectionsServeAndShutDown(t *testing.T) {
	lb := start(t, webConfig(serving("a", namedRawBackend(t, "ok"))))
	addr := lb.Addr("web")
	conns, readers := openParked(t, addr, 50)
	for i := range conns {
		requestOn(t, conns[i], readers[i])
	}
	waitParked(t) // parked again
	if n := lb.Listeners()[0].ActiveConnections; n != 50 {
		t.Fatalf("%d active connections, want 50", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	if err := lb.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("shutdown took %v with parked connections only", took)
	}
	for i, c := range conns {
		if _, err := readers[i].ReadByte(); err != io.EOF {
			t.Fatalf("connection %d: %v after shutdown, want EOF", i, err)
		}
		c.Close()
	}
}

// TestConnectionLimitCountsParkedConnections: a parked connection still
// takes its place under max-connections, and frees it when it ends.
func TestConnectionLimitCountsParkedConnections(t *testing.T) {
	cfg := webConfig(serving("a", namedRawBackend(t, "ok")))
	cfg.Listeners[0].MaxConnections = 1
	lb := start(t, cfg)
	addr := lb.Addr("web")
	conns, _ := openParked(t, addr, 1)
	if err := connectAndRead(addr); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the connection over the limit: %v, want a reset", err)
	}
	if s := lb.Listeners()[0]; s.Refused != 1 || s.ActiveConnections != 1 {
		t.Fatalf("%d refused, %d active; want 1 and 1", s.Refused, s.ActiveConnections)
	}
	conns[0].Close()
	eventually(t, "the parked connection's end to free its slot", func() bool { return lb.Listeners()[0].ActiveConnections == 0 })
	servedHTTP(t, addr)
}

// TestParkedTLSConnectionServesAgain: an HTTP/1.1 connection over TLS parks
// on its socket too, and serves a request that comes in two records after.
func TestParkedTLSConnectionServesAgain(t *testing.T) {
	pki := newTestPKI(t)
	lb := start(t, httpsConfig([]Certificate{pki.leaf(t, "one.example.com")}, serving("a", namedRawBackend(t, "ok"))))
	c, err := tls.Dial("tcp", lb.Addr("web"), &tls.Config{ServerName: "one.example.com", RootCAs: pki.pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	requestOn(t, c, r)
	waitParked(t)
	io.WriteString(c, "GET / HT")
	time.Sleep(50 * time.Millisecond) // the resumed connection reads the rest of the head from a second record
	io.WriteString(c, "TP/1.1\r\nHost: a\r\n\r\n")
	readOK(t, c, r)
	waitParked(t)
	requestOn(t, c, r)
}
