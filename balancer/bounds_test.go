package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-lb/berth/balancer/accesslog"
)

// servedHTTP sends a request on a new connection and reads its answer: the
// connection is admitted and stays open.
func servedHTTP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a connection under the limit: %v", err)
	}
	resp.Body.Close()
	return c
}

// servedTCP reads the target's name through a new connection.
func servedTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, _, _ := dialName(t, addr)
	return c
}

func TestConnectionLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(t *testing.T) Config
		served func(t *testing.T, addr string) net.Conn
	}{
		{"http", func(t *testing.T) Config { return webConfig(serving("a", namedRawBackend(t, "ok"))) }, servedHTTP},
		{"tcp", func(t *testing.T) Config { return l4Config(ProtocolTCP, serving("a", tcpServer(t, namedEcho("a")))) }, servedTCP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.config(t)
			cfg.Listeners[0].MaxConnections = 3
			lb := start(t, cfg)
			addr := lb.Addr(cfg.Listeners[0].Name)
			var open []net.Conn
			for range 3 {
				open = append(open, tc.served(t, addr))
			}
			if err := connectAndRead(addr); !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the connection over the limit: %v, want a reset", err)
			}
			s := lb.Listeners()[0]
			if s.Refused != 1 || s.ActiveConnections != 3 {
				t.Fatalf("%d refused, %d active; want 1 and 3", s.Refused, s.ActiveConnections)
			}
			open[0].Close()
			eventually(t, "the closed connection to free its slot", func() bool { return lb.Listeners()[0].ActiveConnections == 2 })
			tc.served(t, addr)
			if s := lb.Listeners()[0]; s.Refused != 1 || s.TotalConnections != 4 {
				t.Errorf("%d refused, %d served in all; want 1 and 4", s.Refused, s.TotalConnections)
			}
		})
	}
}

// connectAndRead connects to addr and reads a byte; a reset can come
// before the connect returns on loopback.
func connectAndRead(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

// TestConnectionLimitIsExactUnderConcurrency opens many connections at
// once: exactly the limit are served, every other one is refused and counted.
func TestConnectionLimitIsExactUnderConcurrency(t *testing.T) {
	cfg := webConfig(serving("a", namedRawBackend(t, "ok")))
	cfg.Listeners[0].MaxConnections = 10
	lb := start(t, cfg)
	const n = 60
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, err := net.Dial("tcp", lb.Addr("web"))
			switch {
			case err == nil:
				t.Cleanup(func() { c.Close() })
			case !errors.Is(err, syscall.ECONNRESET): // a reset is a refusal, counted below
				t.Error(err)
			}
		})
	}
	wg.Wait()
	eventually(t, "every connection to be admitted or refused", func() bool {
		s := lb.Listeners()[0]
		return s.Refused+uint64(s.ActiveConnections) == n
	})
	if s := lb.Listeners()[0]; s.ActiveConnections != 10 || s.Refused != n-10 || s.TotalConnections != 10 {
		t.Errorf("%d active, %d refused, %d served in all; want 10, %d, 10", s.ActiveConnections, s.Refused, s.TotalConnections, n-10)
	}
}

// stuckWriter is a destination that takes nothing until released, as a full
// pipe to stdout: Write waits.
type stuckWriter struct {
	entered chan struct{} // closed when the first Write waits
	once    sync.Once
	release chan struct{}
	mu      sync.Mutex
	got     bytes.Buffer
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got.Write(p)
}

func (w *stuckWriter) lines() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Count(w.got.Bytes(), []byte("\n"))
}

func TestAccessLogNeverBlocksRequests(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		lb := start(t, webConfig(serving("a", namedRawBackend(t, "ok"))))
		w := &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
		lb.access.Store(accesslog.New(w, nil, 4<<10, &lb.accessDropped))
		url := "http://" + lb.Addr("web") + "/"
		// Fill half the queue: the writer takes the lines and stays stuck.
		sent := 0
		for {
			get(t, client, url)
			sent++
			select {
			case <-w.entered:
			case <-time.After(20 * time.Millisecond):
				continue
			}
			break
		}
		start := time.Now()
		for range 100 {
			get(t, client, url)
			sent++
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("100 requests took %s with the log's destination stuck", d)
		}
		dropped := lb.AccessLogDropped()
		if dropped == 0 || dropped >= 100 {
			t.Fatalf("%d lines dropped of 100 sent with the destination stuck and a 4 KiB queue; want some queued, the rest dropped", dropped)
		}
		close(w.release)
		eventually(t, "the queued lines to be written", func() bool { return w.lines() == sent-int(dropped) })
		if lb.AccessLogDropped() != dropped {
			t.Errorf("dropped grew to %d after the destination took lines again", lb.AccessLogDropped())
		}
	})
}
