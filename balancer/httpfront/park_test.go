package httpfront

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-lb/berth/balancer/accesslog"
	"github.com/berth-lb/berth/balancer/rules"
	"github.com/berth-lb/berth/balancer/stats"
	"github.com/berth-lb/berth/internal/tcppair"
)

// fakeListener answers every request with a fixed 200 and counts what the
// kernel's listener counts; panicRoute makes its next Route call panic.
type fakeListener struct {
	route             Route
	draining          atomic.Bool
	panics            atomic.Uint64
	tracked, detached atomic.Int64
	panicRoute        atomic.Bool
}

func newFakeListener(t *testing.T) *fakeListener {
	table, err := rules.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, page := renderFixed(&FixedResponse{Status: 200, Body: "ok"})
	return &fakeListener{route: Route{Table: table, IdleTimeout: 5 * time.Second, Scheme: "http",
		Fallback: Action{Fixed: raw, FixedPage: page, Code: 200, Stats: new(stats.Route)}}}
}

func (f *fakeListener) Name() string { return "web" }
func (f *fakeListener) Route() *Route {
	if f.panicRoute.Load() {
		panic("a bug on a resumed connection")
	}
	return &f.route
}
func (f *fakeListener) ForwardedPort() []byte { return []byte("80") }
func (f *fakeListener) ForwardedFields() []byte {
	return []byte("X-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n")
}
func (f *fakeListener) Log() *slog.Logger            { return slog.New(slog.DiscardHandler) }
func (f *fakeListener) Panics() *atomic.Uint64       { return &f.panics }
func (f *fakeListener) CountError(stats.ErrorReason) {}
func (f *fakeListener) AccessLog() *accesslog.Logger { return nil }
func (f *fakeListener) Draining() *atomic.Bool       { return &f.draining }
func (f *fakeListener) TrackConn(*ClientConn) func() {
	f.tracked.Add(1)
	return func() { f.tracked.Add(-1) }
}
func (f *fakeListener) Detach() func() { f.detached.Add(1); return func() { f.detached.Add(-1) } }

// serveOne serves the server end of a loopback connection with f (a
// fakeListener); it returns the client's end and a channel closed when
// Serve returns.
func serveOne(t *testing.T, f Listener) (net.Conn, chan struct{}) {
	client, server := tcppair.Loopback(t)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		Serve(f, server)
	}()
	return client, returned
}

func exchange(t *testing.T, client net.Conn, r *bufio.Reader) {
	t.Helper()
	io.WriteString(client, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestParkedConnection: an idle connection's goroutine ends (Serve returns)
// while the connection stays tracked and counted (Detach), it serves again
// on a goroutine of its own when the client sends, and a panic there is the
// backstop's: counted, the connection closed, untracked and uncounted.
func TestParkedConnection(t *testing.T) {
	f := newFakeListener(t)
	client, returned := serveOne(t, f)
	r := bufio.NewReader(client)
	exchange(t, client, r)
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection's goroutine did not end: not parked")
	}
	if f.tracked.Load() != 1 || f.detached.Load() != 1 {
		t.Fatalf("parked: %d tracked, %d detached; want 1 and 1", f.tracked.Load(), f.detached.Load())
	}
	for range 2 { // resumed, then parked and resumed again
		exchange(t, client, r)
		time.Sleep(IdleBufferRelease + 50*time.Millisecond)
	}
	if f.detached.Load() != 1 {
		t.Fatalf("%d detached after parking again; want 1", f.detached.Load())
	}
	f.panicRoute.Store(true)
	io.WriteString(client, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if n, err := client.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d bytes (%v) from a connection whose goroutine panicked; want it closed", n, err)
	}
	eventually(t, "the panicked connection to be untracked and uncounted", func() bool {
		return f.panics.Load() == 1 && f.tracked.Load() == 0 && f.detached.Load() == 0
	})
}

// TestParkedConnectionCloses: a parked connection ends at its idle timeout,
// and at once when woken while draining or closed; it is untracked and
// uncounted each time.
func TestParkedConnectionCloses(t *testing.T) {
	for _, tc := range []struct {
		name        string
		idleTimeout time.Duration
		act         func(c *ClientConn, f *fakeListener)
		within      time.Duration
	}{
		{"idle timeout", 600 * time.Millisecond, func(*ClientConn, *fakeListener) {}, 2 * time.Second},
		{"woken while draining", time.Minute, func(c *ClientConn, f *fakeListener) { f.draining.Store(true); c.WakeIfIdle() }, time.Second},
		{"closed", time.Minute, func(c *ClientConn, _ *fakeListener) { c.Close() }, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeListener(t)
			f.route.IdleTimeout = tc.idleTimeout
			var conn atomic.Pointer[ClientConn]
			client, returned := serveOne(t, &trackingListener{f, &conn})
			r := bufio.NewReader(client)
			start := time.Now()
			exchange(t, client, r)
			<-returned
			tc.act(conn.Load(), f)
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("read %d bytes, %v; want EOF", n, err)
			}
			took := time.Since(start)
			if took > tc.within || tc.name == "idle timeout" && took < tc.idleTimeout {
				t.Fatalf("closed after %v; want within %v (idle timeout %v)", took, tc.within, tc.idleTimeout)
			}
			eventually(t, "the connection to be untracked and uncounted", func() bool {
				return f.tracked.Load() == 0 && f.detached.Load() == 0
			})
		})
	}
}

// trackingListener is a fakeListener that keeps the connection it tracks.
type trackingListener struct {
	*fakeListener
	conn *atomic.Pointer[ClientConn]
}

func (l *trackingListener) TrackConn(c *ClientConn) func() {
	l.conn.Store(c)
	return l.fakeListener.TrackConn(c)
}
