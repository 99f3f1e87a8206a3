package balancer

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// panicOnce makes the next connection, datagram or stream (where) of any
// listener panic in its goroutine, until the test ends.
func panicOnce(t *testing.T, where string) {
	var armed atomic.Bool
	armed.Store(true)
	hook := func(_ *listener, w string) {
		if w == where && armed.CompareAndSwap(true, false) {
			panic("test: a bug in a " + where)
		}
	}
	testHook.Store(&hook)
	t.Cleanup(func() { testHook.Store(nil) })
}

// getOnce sends one GET on a new connection of client and wants 200 "ok".
func getOnce(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(body) != "ok" {
		return errors.New("got " + resp.Status + " " + string(body))
	}
	return nil
}

func TestBackstopEndsOnlyThePanickingConnection(t *testing.T) {
	pki := newTestPKI(t)
	cert := pki.leaf(t, "web.example.com")
	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{ServerName: "web.example.com", RootCAs: pki.pool}}}
	h2 := h2cClient()
	cases := []struct {
		name, where string
		config      func(t *testing.T) Config
		try         func(addr string) error
	}{
		{"http", "conn", func(t *testing.T) Config { return webConfig(serving("a", namedRawBackend(t, "ok"))) },
			func(addr string) error { return getOnce(h1, "http://"+addr+"/") }},
		{"https", "conn", func(t *testing.T) Config {
			return httpsConfig([]Certificate{cert}, serving("a", namedRawBackend(t, "ok")))
		},
			func(addr string) error { return getOnce(h1, "https://"+addr+"/") }},
		{"h2c stream", "stream", func(t *testing.T) Config { return webConfig(serving("a", namedRawBackend(t, "ok"))) },
			func(addr string) error { return getOnce(h2, "http://"+addr+"/") }},
		{"tcp", "conn", func(t *testing.T) Config { return l4Config(ProtocolTCP, serving("a", tcpServer(t, namedEcho("ok")))) },
			func(addr string) error {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil && line != "ok\n" {
					err = errors.New("got " + line)
				}
				return err
			}},
		{"udp", "datagram", func(t *testing.T) Config { return l4Config(ProtocolUDP, serving("a", udpEcho(t, "ok:"))) },
			func(addr string) error {
				c, err := net.Dial("udp", addr)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(500 * time.Millisecond))
				c.Write([]byte("x"))
				buf := make([]byte, 16)
				n, err := c.Read(buf)
				if err == nil && string(buf[:n]) != "ok:x" {
					err = errors.New("got " + string(buf[:n]))
				}
				return err
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.config(t)
			lb := start(t, cfg)
			addr := lb.Addr(cfg.Listeners[0].Name)
			panicOnce(t, tc.where)
			if err := tc.try(addr); err == nil {
				t.Fatal("the connection whose goroutine panicked was served")
			}
			eventually(t, "the panic to be counted", func() bool { return lb.Listeners()[0].Panics == 1 })
			for i := range 3 {
				if err := tc.try(addr); err != nil {
					t.Fatalf("connection %d after the panic: %v", i+1, err)
				}
			}
			if n := lb.Listeners()[0].Panics; n != 1 {
				t.Errorf("%d panics counted, want 1", n)
			}
		})
	}
}

// TestHostileFramingDoesNotTakeTheListenerDown sends what panicked berth's
// HTTP/1.1 parser (issue 10): whatever the answer, the listener must answer
// the next client, on a fresh connection, over both protocols.
func TestHostileFramingDoesNotTakeTheListenerDown(t *testing.T) {
	be := scriptedBackend(t, func(path string) (string, bool) {
		if path == "/bad-response" {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	lb := start(t, webConfig(serving("a", be)))
	addr := lb.Addr("web")
	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedX\r\n\r\n0\r\n\r\n",
		"GET /bad-response HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		conn := dial(t, addr)
		io.WriteString(conn, raw)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, conn) // an answer or none: the next client is what counts
		conn.Close()
		if err := getOnce(h1, "http://"+addr+"/"); err != nil {
			t.Fatalf("after %q: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
		}
	}
	h2 := h2cClient()
	if resp, err := h2.Get("http://" + addr + "/bad-response"); err == nil {
		resp.Body.Close()
	}
	if err := getOnce(h2cClient(), "http://"+addr+"/"); err != nil {
		t.Fatalf("HTTP/2 after a bad response: %v", err)
	}
}
