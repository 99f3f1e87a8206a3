package balancer

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/pool"
)

// backend is a real HTTP server on loopback that names itself in every answer.
func backend(t testing.TB, name string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func addrOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// start runs a balancer with cfg; every listener address in cfg should use port 0.
func start(t testing.TB, cfg Config) *Balancer {
	t.Helper()
	b := New(nil)
	if err := b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b
}

func webConfig(targets ...TargetConfig) Config {
	return Config{
		Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0", Default: Action{Forward: "web"}}},
		Groups:    []GroupConfig{{Name: "web", Targets: targets, ConnectTimeout: time.Second, ResponseTimeout: 5 * time.Second}},
	}
}

func serving(id, addr string) TargetConfig { return TargetConfig{ID: id, Address: addr, Serving: true} }

func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestRoundRobinOverKeepAlive(t *testing.T) {
	a, b2, c := backend(t, "a", nil), backend(t, "b", nil), backend(t, "c", nil)
	lb := start(t, webConfig(serving("a", addrOf(a)), serving("b", addrOf(b2)), serving("c", addrOf(c))))
	url := "http://" + lb.Addr("web") + "/"
	counts := map[string]int{}
	for range 30 {
		code, body, _ := get(t, http.DefaultClient, url)
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		counts[body]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if counts[n] != 10 {
			t.Fatalf("round robin uneven: %v", counts)
		}
	}
}

func TestRulesAndDefaults(t *testing.T) {
	api, www := backend(t, "api", nil), backend(t, "www", nil)
	cfg := Config{
		Listeners: []ListenerConfig{{
			Name: "web", Address: "127.0.0.1:0",
			Rules: []Rule{
				{Priority: 10, Paths: []string{"/api/*"}, Action: Action{Forward: "api"}},
				{Priority: 20, Hosts: []string{"*.example.com"}, Action: Action{Forward: "www"}},
				{Priority: 30, Paths: []string{"/empty"}, Action: Action{Forward: "empty"}},
				{Priority: 40, Paths: []string{"/teapot"}, Action: Action{Fixed: &FixedResponse{Status: 418, ContentType: "application/json", Body: `{"tea":true}`}}},
			},
		}},
		Groups: []GroupConfig{
			{Name: "api", Targets: []TargetConfig{serving("api", addrOf(api))}},
			{Name: "www", Targets: []TargetConfig{serving("www", addrOf(www))}},
			{Name: "empty"},
		},
	}
	lb := start(t, cfg)
	base := "http://" + lb.Addr("web")
	cases := []struct {
		path, host string
		code       int
		body       string
	}{
		{"/api/users?x=1", "", 200, "api"},
		{"/API/users", "", 404, "404 Not Found\n"},
		{"/", "WWW.Example.com", 200, "www"},
		{"/", "example.com", 404, "404 Not Found\n"},
		{"/empty", "", 503, "503 Service Unavailable\n"},
		{"/teapot", "", 418, `{"tea":true}`},
	}
	for _, c := range cases {
		var hdr []string
		if c.host != "" {
			hdr = []string{"Host", c.host}
		}
		code, body, _ := get(t, http.DefaultClient, base+c.path, hdr...)
		if code != c.code || body != c.body {
			t.Errorf("%s host %q: got %d %q, want %d %q", c.path, c.host, code, body, c.code, c.body)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
	})
	lb := start(t, webConfig(serving("a", addrOf(be))))
	get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/", "X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https", "Host", "shop.example", "Connection", "keep-alive, X-Secret")
	h := <-seen
	_, port, _ := net.SplitHostPort(lb.Addr("web"))
	want := map[string]string{"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Port": port, "Host": "shop.example"}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
}

func TestBodiesBothWays(t *testing.T) {
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Query().Get("chunked") != "" {
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush() // forces chunked framing
			w.Write(body[len(body)/2:])
			return
		}
		w.Write(body)
	})
	lb := start(t, webConfig(serving("a", addrOf(be))))
	big := strings.Repeat("0123456789", 50_000)
	for _, q := range []string{"", "?chunked=1"} {
		for _, chunkedReq := range []bool{false, true} {
			var body io.Reader = strings.NewReader(big)
			if chunkedReq {
				body = io.MultiReader(strings.NewReader(big)) // unknown length: chunked request
			}
			resp, err := http.Post("http://"+lb.Addr("web")+"/"+q, "text/plain", body)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != big {
				t.Fatalf("q=%q chunked request=%v: echoed %d bytes, want %d", q, chunkedReq, len(got), len(big))
			}
		}
	}
}

func TestRetryOnConnectFailure(t *testing.T) {
	be := backend(t, "alive", nil)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close() // connection refused from now on
	lb := start(t, webConfig(serving("dead", deadAddr), serving("alive", addrOf(be))))
	for range 10 {
		if code, body, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/"); code != 200 || body != "alive" {
			t.Fatalf("got %d %q", code, body)
		}
	}
	only := start(t, webConfig(serving("dead", deadAddr)))
	if code, _, _ := get(t, http.DefaultClient, "http://"+only.Addr("web")+"/"); code != 502 {
		t.Fatalf("only a dead target: got %d, want 502", code)
	}
}

func TestStalePooledConnectionIsRetried(t *testing.T) {
	be := backend(t, "ok", nil)
	lb := start(t, webConfig(serving("a", addrOf(be))))
	url := "http://" + lb.Addr("web") + "/"
	for range 5 {
		get(t, http.DefaultClient, url)
		be.CloseClientConnections() // the pooled upstream connection is now dead
		if code, body, _ := get(t, http.DefaultClient, url); code != 200 || body != "ok" {
			t.Fatalf("after the target closed the pooled connection: %d %q", code, body)
		}
	}
}

// A target that ends an idle keep-alive connection 50 ms after answering on
// it: the next request takes that pooled connection (within
// pool.LivenessCheckAfter, so it is not checked before use), fails at once
// and is retried on a new connection, not after the response timeout; over
// both protocols (an HTTP/2 request goes to the target over the same pooled
// HTTP/1.1 connections). Both ways of ending it: a close (the request draws a
// reset) and a half-close after which the target reads on and never answers,
// as Docker's port proxy does when the container behind it ends (the request
// draws nothing: only the FIN that came while the connection idled tells, so
// a wait for the answer that forgets it waits for the response timeout).
func TestTargetEndedIdleConnectionIsRetriedAtOnce(t *testing.T) {
	const answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for _, tc := range []struct {
		name string
		end  func(*net.TCPConn)
	}{
		{"closed", func(c *net.TCPConn) { c.Close() }},
		{"half-closed, reading on", func(c *net.TCPConn) { c.CloseWrite(); io.Copy(io.Discard, c) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bothProtocols(t, func(t *testing.T, client *http.Client, _ string) {
				var ended atomic.Int32
				target := tcpServer(t, func(conn net.Conn) {
					if readHead(bufio.NewReader(conn)) != nil {
						return
					}
					io.WriteString(conn, answer)
					time.Sleep(50 * time.Millisecond) // then it ends the idle connection
					ended.Add(1)
					tc.end(conn.(*net.TCPConn))
				})
				cfg := webConfig(serving("a", target))
				cfg.Groups[0].ResponseTimeout = time.Minute // the clients give up after 10 s
				lb := start(t, cfg)
				url := "http://" + lb.Addr("web") + "/"
				for i := range 4 {
					if code, body, _ := get(t, client, url); code != 200 || body != "ok" {
						t.Fatalf("request %d: %d %q", i, code, body)
					}
					// The connection the answer came on, pooled now, ends;
					// the next request takes it.
					for until := time.Now().Add(5 * time.Second); ended.Load() < int32(i+1); time.Sleep(time.Millisecond) {
						if time.Now().After(until) {
							t.Fatal("the target did not end its idle connection")
						}
					}
				}
			})
		})
	}
}

func TestResponseTimeout(t *testing.T) {
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) })
	cfg := webConfig(serving("a", addrOf(be)))
	cfg.Groups[0].ResponseTimeout = 50 * time.Millisecond
	lb := start(t, cfg)
	if code, _, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/"); code != 504 {
		t.Fatalf("got %d, want 504", code)
	}
}

func TestDrainingTargetFinishesInFlightAndGetsNoNewRequest(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	hits := map[string]int{}
	mk := func(name string) *httptest.Server {
		return backend(t, name, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name]++
			mu.Unlock()
			if r.URL.Path == "/slow" {
				<-release
			}
			io.WriteString(w, name)
		})
	}
	a, b2 := mk("a"), mk("b")
	lb := start(t, webConfig(serving("a", addrOf(a)), serving("b", addrOf(b2))))
	url := "http://" + lb.Addr("web")
	// Put a slow request in flight to a, wherever round robin starts.
	slowDone := make(chan string, 2)
	for range 2 {
		go func() { _, body, _ := get(t, http.DefaultClient, url+"/slow"); slowDone <- body }()
	}
	// In flight counts from the pick, before the request reaches a: wait
	// for a to have it too, or it would count as a new request below.
	hitA := func() int {
		mu.Lock()
		defer mu.Unlock()
		return hits["a"]
	}
	deadline := time.Now().Add(5 * time.Second)
	for (lb.InFlight("a") == 0 || hitA() == 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if lb.InFlight("a") != 1 {
		t.Fatalf("in flight to a = %d, want 1", lb.InFlight("a"))
	}
	if err := lb.Apply(webConfig(TargetConfig{ID: "a", Address: addrOf(a)}, serving("b", addrOf(b2)))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := hits["a"]
	mu.Unlock()
	for range 20 {
		if _, body, _ := get(t, http.DefaultClient, url+"/"); body != "b" {
			t.Fatalf("draining target a got a new request")
		}
	}
	close(release)
	got := []string{<-slowDone, <-slowDone}
	if !(got[0] == "a" && got[1] == "b" || got[0] == "b" && got[1] == "a") {
		t.Fatalf("in-flight requests answered %v, want a and b", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits["a"] != before {
		t.Fatalf("a got %d new requests while draining", hits["a"]-before)
	}
	// The client has its answer a moment before the try that sent it
	// returns and stops counting.
	eventually(t, "nothing in flight to a after completion", func() bool { return lb.InFlight("a") == 0 })
}

// rawExchange sends raw bytes on a new connection and returns the status line.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	conn := dial(t, addr)
	io.WriteString(conn, raw)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return strings.TrimSpace(line)
}

func TestMalformedRequests(t *testing.T) {
	be := backend(t, "ok", nil)
	lb := start(t, webConfig(serving("a", addrOf(be))))
	addr := lb.Addr("web")
	cases := []struct{ name, raw, want string }{
		{"garbage", "HELLO HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"unsupported version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"},
		{"smuggling CL+TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400 Bad Request"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"header over 16 KiB", "GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("x", 17<<10) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"headers over 64 KiB", "GET / HTTP/1.1\r\n" + strings.Repeat("X-Many: "+strings.Repeat("y", 1000)+"\r\n", 70) + "\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		// A proxy answers with its own version (RFC 9110 2.5).
		{"http/1.0", "GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"},
	}
	for _, c := range cases {
		if got := rawExchange(t, addr, c.raw); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// A first line without an HTTP version is not HTTP: no answer, the
	// connection closes (serveHTTP).
	for _, raw := range []string{"HELLO\r\n\r\n", "\r\nINVALID CONNECTION PREFACE\r\n\r\n", "GET / HTTP/1.x\r\n\r\n"} {
		conn := dial(t, addr)
		io.WriteString(conn, raw)
		if got, err := io.ReadAll(conn); len(got) > 0 || err != nil {
			t.Errorf("%q: got %q (%v), want the connection closed without an answer", raw, got, err)
		}
	}
}

func TestApplyKeepsConnectionsAndRejectsBadConfig(t *testing.T) {
	a, b2 := backend(t, "a", nil), backend(t, "b", nil)
	lb := start(t, webConfig(serving("a", addrOf(a))))
	addr := lb.Addr("web")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	if _, body, _ := get(t, client, "http://"+addr+"/"); body != "a" {
		t.Fatal(body)
	}
	cfg := webConfig(serving("b", addrOf(b2))) // same listener address: the socket stays
	if err := lb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := get(t, client, "http://"+addr+"/"); body != "b" {
		t.Fatalf("after apply: %q", body)
	}
	bad := webConfig()
	bad.Listeners[0].Default = Action{Forward: "nope"}
	if err := lb.Apply(bad); err == nil || !strings.Contains(err.Error(), `unknown group "nope"`) {
		t.Fatalf("bad config: err = %v", err)
	}
	if _, body, _ := get(t, client, "http://"+addr+"/"); body != "b" {
		t.Fatalf("a rejected config changed routing: %q", body)
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "done")
	})
	lb := New(nil)
	if err := lb.Apply(webConfig(serving("a", addrOf(be)))); err != nil {
		t.Fatal(err)
	}
	url := "http://" + lb.Addr("web") + "/"
	result := make(chan string)
	go func() { _, body, _ := get(t, http.DefaultClient, url); result <- body }()
	for lb.InFlight("a") == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lb.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if body := <-result; body != "done" {
		t.Fatalf("in-flight request got %q", body)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(url[:len(url)-1], "http://"), time.Second); err == nil {
		t.Fatal("listener still accepts after shutdown")
	}
}

// TestShutdownServesAnAcceptedConnection: a connection accepted when the
// balancer drains is served, wherever it is: just accepted and not yet
// counted (where "accepted"), or counted and not yet tracked, its goroutine
// not begun (where "conn"). Shutdown waits for it. Before, Shutdown returned
// with it unserved, and the agent's exit reset it (a fresh connection's
// request lost in a hand-over).
func TestShutdownServesAnAcceptedConnection(t *testing.T) {
	for _, where := range []string{"accepted", "conn"} {
		t.Run(where, func(t *testing.T) {
			lb := New(nil)
			if err := lb.Apply(webConfig(serving("a", namedRawBackend(t, "ok")))); err != nil {
				t.Fatal(err)
			}
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			hook := func(_ *listener, w string) {
				if w == where {
					once.Do(func() { close(entered); <-release })
				}
			}
			testHook.Store(&hook)
			t.Cleanup(func() { testHook.Store(nil) })
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			result := make(chan error, 1)
			go func() { result <- getOnce(client, "http://"+lb.Addr("web")+"/") }()
			<-entered
			shutdown := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				shutdown <- lb.Shutdown(ctx)
			}()
			for !lb.shuttingDown.Load() {
				time.Sleep(time.Millisecond)
			}
			select {
			case err := <-shutdown:
				t.Fatalf("shutdown returned (%v) before the connection it had accepted was served", err)
			case <-time.After(300 * time.Millisecond):
			}
			close(release)
			if err := <-result; err != nil {
				t.Fatalf("the accepted connection's request: %v", err)
			}
			if err := <-shutdown; err != nil {
				t.Fatalf("shutdown: %v", err)
			}
		})
	}
}

// TestShutdownEndsSilentNewConnections: a connection that has sent nothing
// (a browser's preconnection; on https, no ClientHello) does not hold a
// draining balancer up for its idle or handshake timeout: it ends within a
// slice of httpfront.IdleBufferRelease.
func TestShutdownEndsSilentNewConnections(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"http", webConfig(serving("a", namedRawBackend(t, "ok")))},
		{"https", httpsConfig([]Certificate{pki.leaf(t, "web.example.com")}, serving("a", namedRawBackend(t, "ok")))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Listeners[0].IdleTimeout = time.Minute
			lb := New(nil)
			if err := lb.Apply(tc.cfg); err != nil {
				t.Fatal(err)
			}
			silent, err := net.Dial("tcp", lb.Addr("web"))
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			for lb.Listeners()[0].ActiveConnections == 0 {
				time.Sleep(time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := lb.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown with a silent connection open: %v", err)
			}
			silent.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := silent.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("the silent connection read %d bytes, %v; want it closed (EOF)", n, err)
			}
		})
	}
}

// BenchmarkProxyKeepAlive sends one request at a time on one keep-alive
// connection through the balancer to a raw backend: ns/op is a round trip's
// latency, allocs/op the balancer's own allocations per request.
func BenchmarkProxyKeepAlive(b *testing.B) { benchmarkProxyKeepAlive(b, "") }

// benchmarkProxyKeepAlive runs BenchmarkProxyKeepAlive with the access log
// written to accessLog ("" for none).
func benchmarkProxyKeepAlive(b *testing.B, accessLog string) {
	cfg := webConfig(serving("a", namedRawBackend(b, "ok\n")))
	cfg.AccessLog = accessLog
	lb := start(b, cfg)
	roundTrips(b, lb.Addr("web"), "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n")
}

// roundTrips sends req on one connection to addr and reads a raw
// backend's "ok\n" answer, once per op.
func roundTrips(b *testing.B, addr, req string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	head := []byte(req)
	buf := make([]byte, len("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(head); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAlgorithms(t *testing.T) {
	a, b2 := backend(t, "a", nil), backend(t, "b", nil)
	slow := make(chan struct{})
	c := backend(t, "c", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-slow
		}
		io.WriteString(w, "c")
	})
	t.Run("weighted round robin follows the weights", func(t *testing.T) {
		cfg := webConfig(TargetConfig{ID: "a", Address: addrOf(a), Serving: true, Weight: 3}, TargetConfig{ID: "b", Address: addrOf(b2), Serving: true, Weight: 1})
		lb := start(t, cfg)
		counts := map[string]int{}
		for range 40 {
			_, body, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/")
			counts[body]++
		}
		if counts["a"] != 30 || counts["b"] != 10 {
			t.Fatalf("weights 3:1 gave %v", counts)
		}
	})
	t.Run("weighted random follows the weights", func(t *testing.T) {
		cfg := webConfig(TargetConfig{ID: "a", Address: addrOf(a), Serving: true, Weight: 3}, TargetConfig{ID: "b", Address: addrOf(b2), Serving: true, Weight: 1})
		cfg.Groups[0].Algorithm = AlgorithmWeightedRandom
		lb := start(t, cfg)
		counts := map[string]int{}
		for range 400 {
			_, body, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/")
			counts[body]++
		}
		// 3:1 expects 300 a; 240..360 is more than 6 standard deviations wide.
		if counts["a"] < 240 || counts["a"] > 360 {
			t.Fatalf("weights 3:1 over 400 requests gave %v", counts)
		}
	})
	t.Run("least outstanding requests avoids the busy target", func(t *testing.T) {
		cfg := webConfig(serving("a", addrOf(a)), serving("c", addrOf(c)))
		cfg.Groups[0].Algorithm = AlgorithmLeastOutstanding
		lb := start(t, cfg)
		url := "http://" + lb.Addr("web")
		done := make(chan struct{})
		go func() {
			// Until one lands on c, where it stays until slow closes.
			for body := ""; body != "c"; {
				_, body, _ = get(t, http.DefaultClient, url+"/slow")
			}
			close(done)
		}()
		deadline := time.Now().Add(5 * time.Second)
		for lb.InFlight("c") == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		for range 20 {
			if _, body, _ := get(t, http.DefaultClient, url+"/"); body != "a" {
				t.Fatalf("a request went to the busy target c")
			}
		}
		close(slow)
		<-done
	})
	t.Run("unknown algorithm is refused", func(t *testing.T) {
		cfg := webConfig()
		cfg.Groups[0].Algorithm = "fastest"
		if err := New(nil).Apply(cfg); err == nil || !strings.Contains(err.Error(), `unknown algorithm "fastest"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLongIdleConnectionServesAgain(t *testing.T) {
	be := backend(t, "ok", nil)
	lb := start(t, webConfig(serving("a", addrOf(be))))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	url := "http://" + lb.Addr("web") + "/"
	for range 3 {
		if code, body, _ := get(t, client, url); code != 200 || body != "ok" {
			t.Fatalf("got %d %q", code, body)
		}
		time.Sleep(httpfront.IdleBufferRelease + 100*time.Millisecond) // past the release of the idle connection's buffers
	}
	if n := lb.Listeners()[0].TotalConnections; n != 1 {
		t.Fatalf("%d client connections, want the one kept alive", n)
	}
}

func TestClientTimeouts(t *testing.T) {
	be := backend(t, "ok", nil)
	cfg := webConfig(serving("a", addrOf(be)))
	cfg.Listeners[0].IdleTimeout = 100 * time.Millisecond
	lb := start(t, cfg)
	t.Run("a silent idle connection is closed without an answer", func(t *testing.T) {
		conn := dial(t, lb.Addr("web"))
		n, err := conn.Read(make([]byte, 1))
		if n != 0 || err != io.EOF {
			t.Fatalf("read %d bytes, err %v; want EOF", n, err)
		}
	})
	t.Run("a half-sent request gets 408", func(t *testing.T) {
		if got := rawExchange(t, lb.Addr("web"), "GET / HTTP/1.1\r\nHost: a\r\n"); got != "HTTP/1.1 408 Request Timeout" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("a head sent a byte at a time gets 408 before it ends", func(t *testing.T) {
		conn := dial(t, lb.Addr("web"))
		head := "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("y", 50) + "\r\n\r\n"
		var finished atomic.Bool
		go func() {
			for i := range len(head) { // 20 ms a byte: about 1.5 s, the idle timeout is 100 ms
				if _, err := conn.Write([]byte{head[i]}); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			finished.Store(true)
		}()
		line, err := bufio.NewReader(conn).ReadString('\n')
		if strings.TrimSpace(line) != "HTTP/1.1 408 Request Timeout" || finished.Load() {
			t.Fatalf("got %q (%v), head sent whole: %v; want 408 while the head still trickles in", line, err, finished.Load())
		}
	})
}

func TestResponseFraming(t *testing.T) {
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nocontent":
			w.WriteHeader(204)
		case "/trailer":
			w.Header().Set("Trailer", "X-Checksum")
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Checksum", "abc")
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	})
	lb := start(t, webConfig(serving("a", addrOf(be))))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	url := "http://" + lb.Addr("web")
	for range 2 { // twice: the connection must be reusable after each
		req, _ := http.NewRequest("HEAD", url+"/", nil)
		resp, err := client.Do(req)
		if err != nil || resp.ContentLength != 5 {
			t.Fatalf("HEAD: %v, length %d", err, resp.ContentLength)
		}
		resp.Body.Close()
		if code, body, _ := get(t, client, url+"/nocontent"); code != 204 || body != "" {
			t.Fatalf("204: %d %q", code, body)
		}
		resp, err = client.Get(url + "/trailer")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
			t.Fatalf("trailer: body %q trailer %v", body, resp.Trailer)
		}
	}
	if n := lb.Listeners()[0].TotalConnections; n != 1 {
		t.Fatalf("%d client connections, want 1 kept alive", n)
	}
	assertNoBusyConnections(t, lb)
}

func TestPassiveHealthEjectsAndReturns(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	sick := backend(t, "sick", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "sick")
	})
	well := backend(t, "well", nil)
	lb := start(t, webConfig(serving("sick", addrOf(sick)), serving("well", addrOf(well))))
	url := "http://" + lb.Addr("web") + "/"
	fives := 0
	for range 20 {
		if code, _, _ := get(t, http.DefaultClient, url); code == 503 {
			fives++
		}
	}
	if fives != pool.PassiveThreshold {
		t.Fatalf("%d answers of 503 before the sick target left the rotation, want %d", fives, pool.PassiveThreshold)
	}
	stats := lb.Targets()
	if !stats[0].Ejected || stats[0].ID != "sick" || stats[0].Ejections != 1 {
		t.Fatalf("target stats: %+v", stats)
	}
	failing.Store(false)
	waitUntil := time.Now().Add(3 * pool.PassiveBackoff)
	for {
		if _, body, _ := get(t, http.DefaultClient, url); body == "sick" {
			break // back in the rotation after its back-off
		}
		if time.Now().After(waitUntil) {
			t.Fatal("the recovered target did not come back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPassiveHealthFailsOpen(t *testing.T) {
	sick := backend(t, "", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	lb := start(t, webConfig(serving("only", addrOf(sick))))
	for range 5 {
		if code, _, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/"); code != 500 {
			t.Fatalf("got %d: an ejected only target must still be used (fail open), and its 500 passed on", code)
		}
	}
}

func TestStalePooledConnectionIsNotUsedForAPost(t *testing.T) {
	be := backend(t, "ok", nil)
	lb := start(t, webConfig(serving("a", addrOf(be))))
	url := "http://" + lb.Addr("web") + "/"
	post := func() int {
		resp, err := http.Post(url, "text/plain", strings.NewReader("not idempotent"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != 200 {
		t.Fatalf("first POST: %d", code)
	}
	be.CloseClientConnections() // the target closes the pooled connection while it idles
	time.Sleep(pool.LivenessCheckAfter + 100*time.Millisecond)
	if code := post(); code != 200 {
		t.Fatalf("a POST went into a connection the target had closed: %d", code)
	}
}
