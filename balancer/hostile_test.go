package balancer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The hostile-input tests of issue #10: each request and response that an
// attacker tried against a listener with a deny rule (/admin* -> 403) and a
// default forward to an app. For each, berth must stay up, the app must
// never see a request past the rules, and the next client, on a fresh
// connection, must get its own answer.

// recordingApp is the app behind berth: it parses what it receives as a
// typical server does (net/http's parser), records every request, and answers
// "for PATH", or, for /raw/NAME, the scripted raw response NAME.
type recordingApp struct {
	addr string
	raw  map[string]string

	mu       sync.Mutex
	requests []*http.Request
}

func newRecordingApp(t *testing.T, raw map[string]string) *recordingApp {
	a := &recordingApp{raw: raw}
	a.addr = tcpServer(t, a.serve)
	return a
}

func (a *recordingApp) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(strings.NewReader(string(body)))
		a.mu.Lock()
		a.requests = append(a.requests, req)
		a.mu.Unlock()
		if name, ok := strings.CutPrefix(req.URL.Path, "/raw/"); ok {
			io.WriteString(c, a.raw[name])
			continue
		}
		answer := "for " + req.URL.Path
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(answer))+"\r\n\r\n"+answer)
	}
}

// saw returns the requests the app received since the last call.
func (a *recordingApp) saw() []*http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.requests
	a.requests = nil
	return out
}

func hostileConfig(app string) Config {
	return Config{
		AccessLog: AccessLogOff,
		Listeners: []ListenerConfig{{
			Name: "web", Address: "127.0.0.1:0", IdleTimeout: 300 * time.Millisecond,
			Rules: []Rule{
				{Priority: 1, Paths: []string{"/admin*"}, Action: Action{Fixed: &FixedResponse{Status: 403, Body: "denied"}}},
				{Priority: 2, Hosts: []string{"internal.example"}, Action: Action{Fixed: &FixedResponse{Status: 403, Body: "internal"}}},
			},
			Default: Action{Forward: "app"},
		}},
		Groups: []GroupConfig{{Name: "app", Targets: []TargetConfig{serving("app", app)},
			ConnectTimeout: time.Second, ResponseTimeout: 2 * time.Second}},
	}
}

// exchangeRaw sends raw on a new connection and reads every response berth
// sends until it closes the connection or goes quiet.
func exchangeRaw(t *testing.T, addr, raw string) []*http.Response {
	t.Helper()
	conn := dial(t, addr)
	io.WriteString(conn, raw)
	conn.SetReadDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(conn)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return out
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		out = append(out, resp)
		if resp.StatusCode == 101 || resp.Close {
			return out
		}
	}
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	return string(b)
}

// checkNextClient sends a plain request on a fresh connection: it must get
// its own answer, not a response left over from the hostile exchange.
func checkNextClient(t *testing.T, addr, name string) {
	t.Helper()
	for i := range 3 { // the pooled target connection, then fresh ones
		path := "/next-" + name + "-" + strconv.Itoa(i)
		resps := exchangeRaw(t, addr, "GET "+path+" HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
		if len(resps) != 1 || resps[0].StatusCode != 200 || bodyOf(resps[0]) != "for "+path {
			t.Fatalf("the next client (%s) got %s, want its own answer", path, describe(resps))
		}
	}
}

func describe(resps []*http.Response) string {
	var b strings.Builder
	for _, r := range resps {
		b.WriteString(strconv.Itoa(r.StatusCode) + " " + strconv.Quote(bodyOf(r)) + "; ")
	}
	if len(resps) == 0 {
		return "no response"
	}
	return b.String()
}

func TestHostileRequests(t *testing.T) {
	app := newRecordingApp(t, map[string]string{
		"101": "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	})
	lb := start(t, hostileConfig(app.addr))
	addr := lb.Addr("web")
	smuggled := "GET /admin/secret HTTP/1.1\r\nHost: app\r\n\r\n"
	chunkedSmuggle := func(chunks string) string {
		return "POST /x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
	}
	cases := []struct {
		name string
		raw  string
		// status is what berth answers first; path, when set, is the one
		// request the app must have seen (else it must have seen none).
		status int
		path   string
		check  func(t *testing.T, req *http.Request)
	}{
		{name: "TE chunkedX", raw: "POST /x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunkedX\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE gzip, chunked", raw: "POST /x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 501},
		{name: "Connection: content-length", status: 200, path: "/x",
			raw: "POST /x HTTP/1.1\r\nHost: app\r\nConnection: content-length\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled,
			check: func(t *testing.T, req *http.Request) {
				if req.ContentLength != int64(len(smuggled)) {
					t.Errorf("the app read a body of %d bytes, want %d", req.ContentLength, len(smuggled))
				}
			}},
		{name: "Connection: transfer-encoding", status: 200, path: "/x",
			raw: "POST /x HTTP/1.1\r\nHost: app\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(int64(len(smuggled)), 16) + "\r\n" + smuggled + "\r\n0\r\n\r\n"},
		{name: "Connection: host", status: 200, path: "/x", raw: "GET /x HTTP/1.1\r\nHost: app\r\nConnection: host\r\n\r\n",
			check: func(t *testing.T, req *http.Request) {
				if req.Host != "app" {
					t.Errorf("the app got Host %q, want app", req.Host)
				}
			}},
		{name: "two Host lines", raw: "GET /x HTTP/1.1\r\nHost: public.example\r\nHost: internal.example\r\n\r\n", status: 400},
		{name: "absolute-form beats Host", status: 200, path: "/x",
			raw: "GET http://public.example/x HTTP/1.1\r\nHost: internal.example\r\n\r\n",
			check: func(t *testing.T, req *http.Request) {
				if req.Host != "public.example" || req.RequestURI != "/x" {
					t.Errorf("the app got Host %q and target %q, want public.example and /x", req.Host, req.RequestURI)
				}
			}},
		{name: "absolute-form routed by its host", raw: "GET http://internal.example/x HTTP/1.1\r\nHost: public.example\r\n\r\n", status: 403},
		{name: "percent-encoded path", raw: "GET /%61dmin/secret HTTP/1.1\r\nHost: app\r\n\r\n", status: 403},
		{name: "doubled slash", raw: "GET //admin/secret HTTP/1.1\r\nHost: app\r\n\r\n", status: 403},
		{name: "dot-dot segment", raw: "GET /x/../admin/secret HTTP/1.1\r\nHost: app\r\n\r\n", status: 403},
		{name: "encoded dot-dot segment", raw: "GET /x/%2e%2e/admin/secret HTTP/1.1\r\nHost: app\r\n\r\n", status: 403},
		{name: "trailing dot in Host", raw: "GET /x HTTP/1.1\r\nHost: internal.example.\r\n\r\n", status: 403},
		{name: "upper-case Host", raw: "GET /x HTTP/1.1\r\nHost: INTERNAL.example:80\r\n\r\n", status: 403},
		{name: "HTTP/1.1 without Host", raw: "GET /x HTTP/1.1\r\n\r\n", status: 400},
		{name: "NUL in a name", raw: "GET /x HTTP/1.1\r\nHost: app\r\nX\x00: 1\r\n\r\n", status: 400},
		{name: "space in a name", raw: "GET /x HTTP/1.1\r\nHost: app\r\nX Y: 1\r\n\r\n", status: 400},
		{name: "0xFF in a name", raw: "GET /x HTTP/1.1\r\nHost: app\r\nX\xff: 1\r\n\r\n", status: 400},
		{name: "tab before the colon", raw: "GET /x HTTP/1.1\r\nHost: app\r\nX\t: 1\r\n\r\n", status: 400},
		{name: "NUL in a value", raw: "GET /x HTTP/1.1\r\nHost: app\r\nX: a\x00b\r\n\r\n", status: 400},
		{name: "bare CR in a value", raw: "GET /x HTTP/1.1\r\nHost: app\r\nX: a\rHost: internal.example\r\n\r\n", status: 400},
		{name: "method with control bytes", raw: "G\x01T /x HTTP/1.1\r\nHost: app\r\n\r\n", status: 400},
		{name: "space in the path", raw: "GET /admin/secret /x HTTP/1.1\r\nHost: app\r\n\r\n", status: 400},
		{name: "HTTP/1.0 with Transfer-Encoding", raw: "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "chunk data without CRLF", raw: chunkedSmuggle("3\r\nabcGET /admin/secret HTTP/1.1\r\n\r\n0\r\n\r\n"), status: 400},
		{name: "bare LF after chunk size", raw: chunkedSmuggle("3\nabc\r\n0\r\n\r\n"), status: 400},
		{name: "junk around chunk size", raw: chunkedSmuggle(" 3 x\r\nabc\r\n0\r\n\r\n"), status: 400},
		{name: "control byte in chunk extension", raw: chunkedSmuggle("3;a\x01\r\nabc\r\n0\r\n\r\n"), status: 400},
		{name: "bad trailer line", raw: chunkedSmuggle("3\r\nabc\r\n0\r\nnot a field\r\n\r\n"), status: 400},
		{name: "Upgrade: h2c is not passed on", status: 200, path: "/x",
			raw: "GET /x HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
			check: func(t *testing.T, req *http.Request) {
				if req.Header.Get("Upgrade") != "" || req.Header.Get("Http2-Settings") != "" {
					t.Errorf("the app got Upgrade %q, HTTP2-Settings %q", req.Header.Get("Upgrade"), req.Header.Get("Http2-Settings"))
				}
			}},
		{name: "101 without an upgrade request", raw: "GET /raw/101 HTTP/1.1\r\nHost: app\r\n\r\nGET /admin/secret HTTP/1.1\r\nHost: app\r\n\r\n",
			status: 502, path: "/raw/101"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app.saw()
			resps := exchangeRaw(t, addr, tc.raw)
			if len(resps) == 0 || resps[0].StatusCode != tc.status {
				t.Fatalf("berth answered %s, want %d", describe(resps), tc.status)
			}
			saw := app.saw()
			for _, req := range saw {
				if strings.Contains(req.URL.Path, "admin") || strings.Contains(strings.ToLower(req.Host), "internal") {
					t.Fatalf("the app received %s %s (Host %s) past the rules", req.Method, req.URL.Path, req.Host)
				}
			}
			switch {
			case tc.path == "" && len(saw) > 0:
				t.Fatalf("the app received %d requests (first %s), want none", len(saw), saw[0].URL.Path)
			case tc.path != "" && (len(saw) != 1 || saw[0].URL.Path != tc.path):
				t.Fatalf("the app received %d requests, want one for %s", len(saw), tc.path)
			case tc.check != nil:
				tc.check(t, saw[0])
			}
			checkNextClient(t, addr, strings.ReplaceAll(tc.name, " ", "-"))
		})
	}
}

func TestHostileResponses(t *testing.T) {
	app := newRecordingApp(t, map[string]string{
		"chunked-gzip":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"chunkedX":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunkedX\r\n\r\n",
		"connection-cl":   "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nok",
		"extra-bytes":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
		"head-body":       "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
		"204-body":        "HTTP/1.1 204 No Content\r\nContent-Length: 44\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
		"bare-cr":         "HTTP/1.1 200 OK\r\nX: a\rSet-Cookie: session=forged\r\nContent-Length: 2\r\n\r\nok",
		"1xx-hop":         "HTTP/1.1 103 Early Hints\r\nConnection: x-hop\r\nX-Hop: 1\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"chunked":         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n",
		"101-unasked":     "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"bad-chunk":       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
		"reason-with-nul": "HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nok",
	})
	lb := start(t, hostileConfig(app.addr))
	addr := lb.Addr("web")
	cases := []struct {
		name, raw string
		statuses  []int
		check     func(t *testing.T, resps []*http.Response)
	}{
		{name: "Transfer-Encoding chunked, gzip", raw: "GET /raw/chunked-gzip HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{502}},
		{name: "Transfer-Encoding chunkedX", raw: "GET /raw/chunkedX HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{502}},
		{name: "Connection: content-length", statuses: []int{200, 200},
			raw: "GET /raw/connection-cl HTTP/1.1\r\nHost: app\r\n\r\nGET /after HTTP/1.1\r\nHost: app\r\n\r\n",
			check: func(t *testing.T, resps []*http.Response) {
				if bodyOf(resps[0]) != "ok" || bodyOf(resps[1]) != "for /after" {
					t.Errorf("a kept-alive client read %s", describe(resps))
				}
			}},
		{name: "bytes after the response", raw: "GET /raw/extra-bytes HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{200}},
		{name: "a body in answer to HEAD", raw: "HEAD /raw/head-body HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{200}},
		{name: "a body after 204", raw: "GET /raw/204-body HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{204},
			check: func(t *testing.T, resps []*http.Response) {
				if resps[0].Header.Get("Content-Length") != "" {
					t.Errorf("a 204 went out with Content-Length %q", resps[0].Header.Get("Content-Length"))
				}
			}},
		{name: "bare CR in a field", raw: "GET /raw/bare-cr HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{502}},
		{name: "NUL in the reason", raw: "GET /raw/reason-with-nul HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{502}},
		{name: "1xx with hop-by-hop fields", raw: "GET /raw/1xx-hop HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{103, 200},
			check: func(t *testing.T, resps []*http.Response) {
				// net/http's ReadResponse skips 1xx: read the raw bytes instead.
				raw := rawResponse(t, addr, "GET /raw/1xx-hop HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
				if !strings.HasPrefix(raw, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n") {
					t.Errorf("the client read %q", raw)
				}
			}},
		{name: "chunked response to an HTTP/1.0 client", raw: "GET /raw/chunked HTTP/1.0\r\n\r\n", statuses: []int{200},
			check: func(t *testing.T, resps []*http.Response) {
				raw := rawResponse(t, addr, "GET /raw/chunked HTTP/1.0\r\n\r\n")
				if strings.Contains(strings.ToLower(raw), "transfer-encoding") || !strings.HasSuffix(raw, "\r\n\r\nok!!!") {
					t.Errorf("the HTTP/1.0 client read %q", raw)
				}
			}},
		{name: "101 nobody asked for", raw: "GET /raw/101-unasked HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{502}},
		{name: "101 to an upgrade to something else", raw: "GET /raw/101-unasked HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n", statuses: []int{502}},
		{name: "broken chunk framing", raw: "GET /raw/bad-chunk HTTP/1.1\r\nHost: app\r\n\r\n", statuses: []int{200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resps := exchangeRaw(t, addr, tc.raw)
			if len(resps) < len(tc.statuses) {
				t.Fatalf("berth answered %s, want %v", describe(resps), tc.statuses)
			}
			for i, s := range tc.statuses {
				if resps[i].StatusCode != s {
					t.Fatalf("berth answered %s, want %v", describe(resps), tc.statuses)
				}
			}
			if tc.check != nil {
				tc.check(t, resps)
			}
			checkNextClient(t, addr, strings.ReplaceAll(tc.name, " ", "-"))
		})
	}
}

// rawResponse sends raw on a new connection and returns all berth sends
// until it closes the connection.
func rawResponse(t *testing.T, addr, raw string) string {
	t.Helper()
	conn := dial(t, addr)
	io.WriteString(conn, raw)
	b, _ := io.ReadAll(conn)
	return string(b)
}

// A client's broken body is the client's fault: answered 400, never counted
// against the target (two such failures would eject it).
func TestClientBodyDoesNotBlameTarget(t *testing.T) {
	app := newRecordingApp(t, nil)
	lb := start(t, hostileConfig(app.addr))
	addr := lb.Addr("web")
	for range 3 {
		resps := exchangeRaw(t, addr, "POST /x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n")
		if len(resps) != 1 || resps[0].StatusCode != 400 {
			t.Fatalf("berth answered %s, want 400", describe(resps))
		}
	}
	for _, ts := range lb.Targets() {
		if ts.Failures != 0 || ts.Ejected || ts.Ejections != 0 {
			t.Fatalf("target %s: %d failures, ejected %v (%d ejections) after clients' broken bodies", ts.ID, ts.Failures, ts.Ejected, ts.Ejections)
		}
	}
	checkNextClient(t, addr, "after-broken-bodies")
}

// A tunnel keeps the listener's idle timeout: a WebSocket nobody speaks on
// is closed, while one that talks stays open.
func TestTunnelIdleTimeout(t *testing.T) {
	ws := tcpServer(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		if _, err := http.ReadRequest(r); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		io.Copy(c, r) // echo
	})
	cfg := hostileConfig(ws)
	cfg.Listeners[0].IdleTimeout = time.Second
	lb := start(t, cfg)
	conn := dial(t, lb.Addr("web"))
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Fatalf("101 went out with Connection %q", resp.Header.Get("Connection"))
	}
	// Talking every 100 ms, past the 1 s idle timeout: the tunnel stays.
	var lastEcho time.Time
	for i := range 15 {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(conn, "ping")
		buf := make([]byte, 4)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		lastEcho = time.Now()
	}
	// Quiet from the last echo on: closed after about the idle timeout.
	start := lastEcho
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("a quiet tunnel read %v, want EOF", err)
	}
	if waited := time.Since(start); waited < 700*time.Millisecond || waited > 4*time.Second {
		t.Fatalf("a quiet tunnel closed after %v, want about the 1 s idle timeout", waited)
	}
}
