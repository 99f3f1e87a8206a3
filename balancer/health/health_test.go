package health

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/matcher"
)

func mustMatcher(t *testing.T, s string) matcher.Matcher {
	m, err := matcher.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitState(t *testing.T, c *Checker, id, state string, within time.Duration) Result {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if r, ok := c.Result(id); ok && r.State == state {
			return r
		}
		if time.Now().After(deadline) {
			r, _ := c.Result(id)
			t.Fatalf("%s is %+v, want %s within %v", id, r, state, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHTTPCheckStateMachine(t *testing.T) {
	var code atomic.Int32
	code.Store(200)
	var lastUA atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastUA.Store(r.UserAgent())
		if r.URL.Path != "/health" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	c := New(nil)
	defer c.Close()
	check := Check{Protocol: "http", Path: "/health", Interval: 30 * time.Millisecond, Timeout: 200 * time.Millisecond, Healthy: 3, Unhealthy: 2, Matcher: mustMatcher(t, "200-299")}
	c.Sync([]Target{{ID: "a", Address: strings.TrimPrefix(srv.URL, "http://"), Check: check}})

	if r, _ := c.Result("a"); r.State != Initial || r.Reason != ReasonInitial {
		t.Fatalf("a new target is %+v, want initial", r)
	}
	waitState(t, c, "a", Healthy, time.Second) // ONE passing check
	if ua, _ := lastUA.Load().(string); ua != userAgent {
		t.Errorf("User-Agent %q", ua)
	}

	code.Store(503)
	start := time.Now()
	r := waitState(t, c, "a", Unhealthy, time.Second)
	if r.Reason != ReasonCodeMismatch || !strings.Contains(r.Detail, "status 503 not in 200-299") {
		t.Errorf("unhealthy result %+v", r)
	}
	// Two failures in a row at 30 ms: at least one interval must have passed.
	if since := time.Since(start); since < 30*time.Millisecond {
		t.Errorf("unhealthy after %v: one failure is not enough", since)
	}

	code.Store(200)
	start = time.Now()
	waitState(t, c, "a", Healthy, time.Second)
	if since := time.Since(start); since < 60*time.Millisecond {
		t.Errorf("healthy again after %v: three passes need two intervals", since)
	}
	if passed, failed := c.Counts(); passed == 0 || failed < 2 {
		t.Errorf("counts: %d passed, %d failed", passed, failed)
	}
}

func TestTimeoutAndTCPChecks(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
	defer slow.Close()
	open, _ := net.Listen("tcp", "127.0.0.1:0")
	defer open.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	c := New(nil)
	defer c.Close()
	base := Check{Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond, Healthy: 2, Unhealthy: 2, Matcher: mustMatcher(t, "200")}
	httpCheck, tcpCheck := base, base
	httpCheck.Protocol, httpCheck.Path = "http", "/"
	tcpCheck.Protocol = "tcp"
	c.Sync([]Target{
		{ID: "slow", Address: strings.TrimPrefix(slow.URL, "http://"), Check: httpCheck},
		{ID: "open", Address: open.Addr().String(), Check: tcpCheck},
		{ID: "closed", Address: closedAddr, Check: tcpCheck},
	})
	if r := waitState(t, c, "slow", Unhealthy, 2*time.Second); r.Reason != ReasonTimeout {
		t.Errorf("slow: %+v", r)
	}
	waitState(t, c, "open", Healthy, time.Second)
	if r := waitState(t, c, "closed", Unhealthy, time.Second); r.Reason != ReasonFailedChecks {
		t.Errorf("closed: %+v", r)
	}

	c.Sync([]Target{{ID: "open", Address: open.Addr().String(), Check: tcpCheck}})
	if _, ok := c.Result("slow"); ok {
		t.Error("a target removed from Sync keeps a result")
	}
}

func TestNewTargetIsRetriedEverySecondUntilItPasses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // not listening yet, as a container just started
	c := New(nil)
	defer c.Close()
	check := Check{Protocol: "tcp", Interval: time.Minute, Timeout: 200 * time.Millisecond, Healthy: 2, Unhealthy: 3}
	c.Sync([]Target{{ID: "late", Address: addr, Check: check}})
	time.Sleep(100 * time.Millisecond) // the first check fails
	late, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer late.Close()
	waitState(t, c, "late", Healthy, 3*time.Second) // far less than the one-minute interval
}

func TestHTTPSCheckOfATLSTarget(t *testing.T) {
	var sawTLS atomic.Bool
	// httptest's certificate is for example.com and signed by a CA nobody
	// trusts: the check passes anyway, as ALB's does.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawTLS.Store(r.TLS != nil)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	c := New(nil)
	defer c.Close()
	check := Check{Path: "/", Interval: 20 * time.Millisecond, Timeout: 500 * time.Millisecond, Healthy: 2, Unhealthy: 2, Matcher: mustMatcher(t, "200")}
	secure, plain := check, check
	secure.Protocol, plain.Protocol = "https", "http"
	c.Sync([]Target{{ID: "secure", Address: addr, Check: secure}, {ID: "plain", Address: addr, Check: plain}})
	waitState(t, c, "secure", Healthy, 2*time.Second)
	if !sawTLS.Load() {
		t.Error("the target saw the https check without TLS")
	}
	// Plain HTTP to a TLS port gets Go's 400: the protocol matters.
	if r := waitState(t, c, "plain", Unhealthy, 2*time.Second); r.Reason != ReasonCodeMismatch {
		t.Errorf("an http check of a TLS target: %+v", r)
	}
}

func TestAPanickingCheckFailsAndTheLoopGoesOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var armed atomic.Bool
	armed.Store(true)
	hook := func(Target) {
		if armed.CompareAndSwap(true, false) {
			panic("test: a bug in a check")
		}
	}
	testHook.Store(&hook)
	defer testHook.Store(nil)
	c := New(nil)
	defer c.Close()
	check := Check{Protocol: "tcp", Interval: 30 * time.Millisecond, Timeout: 200 * time.Millisecond, Healthy: 2, Unhealthy: 2}
	c.Sync([]Target{{ID: "a", Address: ln.Addr().String(), Check: check}})
	waitState(t, c, "a", Healthy, 2*time.Second)
	if passed, failed := c.Counts(); c.Panics() != 1 || failed != 1 || passed == 0 {
		t.Errorf("%d panics, %d failed and %d passed checks; want 1, 1 and some", c.Panics(), failed, passed)
	}
}
