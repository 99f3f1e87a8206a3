package balancer

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// bothProtocols runs f with an HTTP/1.1 client and with an HTTP/2 (h2c)
// client, neither following redirects: every HTTP feature must work the same
// on both of berth's paths. proto is the request line's protocol.
func bothProtocols(t *testing.T, f func(t *testing.T, client *http.Client, proto string)) {
	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h2 := h2cClient()
	h2.CheckRedirect = noFollow
	for _, p := range []struct {
		proto  string
		client *http.Client
	}{
		{"HTTP/1.1", &http.Client{Timeout: 10 * time.Second, CheckRedirect: noFollow}},
		{"HTTP/2.0", h2},
	} {
		t.Run(p.proto, func(t *testing.T) { f(t, p.client, p.proto) })
	}
}

// namedRawBackend answers every request on loopback with its name as the
// body, without net/http and without allocating per request: thousands of
// requests stay fast, and a benchmark's allocations are the balancer's.
func namedRawBackend(t testing.TB, name string) string { return rawBackend(t, name, nil, nil) }

// rawBackend is namedRawBackend that counts the request heads it reads in
// seen and, when hold is not nil, answers each only once hold is closed.
func rawBackend(t testing.TB, name string, seen *atomic.Int64, hold <-chan struct{}) string {
	t.Helper()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(name)) + "\r\n\r\n" + name)
	return tcpServer(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			if readHead(br) != nil {
				return
			}
			if seen != nil {
				seen.Add(1)
			}
			if hold != nil {
				<-hold
			}
			if _, err := conn.Write(resp); err != nil {
				return
			}
		}
	})
}

// readHead reads a request head up to its blank line.
func readHead(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil || len(line) <= 2 {
			return err
		}
	}
}

func TestRuleConditionsThroughTheProxy(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		hit, miss := namedRawBackend(t, "hit"), namedRawBackend(t, "miss")
		cases := []struct {
			name string
			rule Rule
			hdr  []string
			path string
			want string
		}{
			{"header matches", Rule{Headers: map[string][]string{"X-Env": {"beta*"}}}, []string{"x-env", "BETA-2"}, "/", "hit"},
			{"header differs", Rule{Headers: map[string][]string{"X-Env": {"beta*"}}}, []string{"x-env", "prod"}, "/", "miss"},
			{"method", Rule{Methods: []string{"GET"}}, nil, "/", "hit"},
			{"other method", Rule{Methods: []string{"POST"}}, nil, "/", "miss"},
			{"query", Rule{Queries: []QueryCondition{{Key: "v", Value: "2"}}}, nil, "/x?a=1&V=2", "hit"},
			{"query differs", Rule{Queries: []QueryCondition{{Key: "v", Value: "2"}}}, nil, "/x?v=3", "miss"},
			{"source ip", Rule{SourceIPs: []string{"127.0.0.0/8"}}, nil, "/", "hit"},
			{"source ip ignores X-Forwarded-For", Rule{SourceIPs: []string{"10.0.0.0/8"}}, []string{"X-Forwarded-For", "10.1.1.1"}, "/", "miss"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.rule.Priority, c.rule.Action = 1, Action{Forward: "hit"}
				cfg := Config{
					Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0", Rules: []Rule{c.rule}, Default: Action{Forward: "miss"}}},
					Groups:    []GroupConfig{{Name: "hit", Targets: []TargetConfig{serving("hit", hit)}}, {Name: "miss", Targets: []TargetConfig{serving("miss", miss)}}},
				}
				lb := start(t, cfg)
				if _, body, _ := get(t, client, "http://"+lb.Addr("web")+c.path, c.hdr...); body != c.want {
					t.Errorf("reached %q, want %q", body, c.want)
				}
			})
		}
	})
}

func TestWeightedForwardSplitsByWeight(t *testing.T) {
	a, b := namedRawBackend(t, "a"), namedRawBackend(t, "b")
	cfg := Config{
		Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0", Default: Action{WeightedForward: []WeightedGroup{{Group: "a", Weight: 90}, {Group: "b", Weight: 10}, {Group: "c", Weight: 0}}}}},
		Groups:    []GroupConfig{{Name: "a", Targets: []TargetConfig{serving("a", a)}}, {Name: "b", Targets: []TargetConfig{serving("b", b)}}, {Name: "c"}},
	}
	lb := start(t, cfg)
	conn, err := net.Dial("tcp", lb.Addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	const n = 10000
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		counts[string(body)]++
	}
	if share := float64(counts["a"]) / n; math.Abs(share-0.9) > 0.02 {
		t.Errorf("group a got %.3f of %d requests, want 0.90±0.02 (%v)", share, n, counts)
	}
	if counts["a"]+counts["b"] != n {
		t.Errorf("a weight-0 group got requests: %v", counts)
	}
}

func TestWeightedForwardGroupStickiness(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		a, b := namedRawBackend(t, "a"), namedRawBackend(t, "b")
		cfg := Config{
			Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0", Default: Action{
				WeightedForward: []WeightedGroup{{Group: "a", Weight: 50}, {Group: "b", Weight: 50}}, GroupStickiness: time.Hour}}},
			Groups: []GroupConfig{{Name: "a", Targets: []TargetConfig{serving("a", a)}}, {Name: "b", Targets: []TargetConfig{serving("b", b)}}},
		}
		lb := start(t, cfg)
		url := "http://" + lb.Addr("web") + "/"
		_, first, h := get(t, client, url)
		cookie := h.Get("Set-Cookie")
		if !strings.HasPrefix(cookie, StickyCookieGroup+"=") || !strings.Contains(cookie, "; Expires=") {
			t.Fatalf("Set-Cookie = %q, want a %s cookie", cookie, StickyCookieGroup)
		}
		for range 30 {
			if _, body, _ := get(t, client, url, "Cookie", strings.SplitN(cookie, ";", 2)[0]); body != first {
				t.Fatalf("a request with the group cookie reached group %q, want %q", body, first)
			}
		}
		seen := map[string]bool{}
		for range 40 {
			_, body, _ := get(t, client, url, "Cookie", StickyCookieGroup+"=unknown")
			seen[body] = true
		}
		if !seen["a"] || !seen["b"] {
			t.Errorf("an unknown group cookie did not pick by weight: reached %v", seen)
		}
	})
}

func TestRedirects(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		cases := []struct {
			name     string
			redirect Redirect
			path     string
			host     string
			want     string
		}{
			{"to https keeps the rest", Redirect{Status: 301, Protocol: "HTTPS", Port: "443"}, "/a/b?x=1", "shop.example", "https://shop.example/a/b?x=1"},
			{"new host, port shown", Redirect{Status: 302, Host: "new.example", Port: "8443", Protocol: "https"}, "/p", "old.example", "https://new.example:8443/p"},
			{"path template", Redirect{Status: 301, Path: "/v2/#{path}"}, "/users?id=7", "a.example", "http://a.example:PORT/v2/users?id=7"},
			{"query replaced, host template", Redirect{Status: 302, Host: "www.#{host}", Query: "from=#{host}"}, "/", "a.example", "http://www.a.example:PORT/?from=a.example"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				cfg := Config{Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0", Rules: []Rule{{Priority: 1, Action: Action{Redirect: &c.redirect}}}}}}
				lb := start(t, cfg)
				_, port, _ := net.SplitHostPort(lb.Addr("web"))
				code, _, h := get(t, client, "http://"+lb.Addr("web")+c.path, "Host", c.host)
				want := strings.ReplaceAll(c.want, "PORT", port)
				if code != c.redirect.Status || h.Get("Location") != want {
					t.Errorf("got %d %q, want %d %q", code, h.Get("Location"), c.redirect.Status, want)
				}
			})
		}
	})
}

func TestActionsAreCheckedAsOnALB(t *testing.T) {
	groups := []GroupConfig{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}, {Name: "e"}, {Name: "f"}}
	six := []WeightedGroup{{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}, {"f", 1}}
	cases := []struct {
		name   string
		action Action
		proto  string
		want   string
	}{
		{"six groups", Action{WeightedForward: six}, "", "at most 5"},
		{"weight too high", Action{WeightedForward: []WeightedGroup{{"a", 1000}}}, "", "weight 1000: use 0..999"},
		{"all weights zero", Action{WeightedForward: []WeightedGroup{{"a", 0}, {"b", 0}}}, "", "every group of the forward has weight 0"},
		{"group twice", Action{WeightedForward: []WeightedGroup{{"a", 1}, {"a", 2}}}, "", `group "a" twice`},
		{"unknown group", Action{WeightedForward: []WeightedGroup{{"zz", 1}}}, "", `unknown group "zz"`},
		{"redirect to itself", Action{Redirect: &Redirect{Status: 301}}, "", "changes nothing"},
		{"redirect to itself, spelled out", Action{Redirect: &Redirect{Status: 301, Protocol: "HTTP", Path: "/#{path}"}}, "", "changes nothing"},
		{"redirect status", Action{Redirect: &Redirect{Status: 307, Host: "x"}}, "", "use 301 or 302"},
		{"redirect https to http", Action{Redirect: &Redirect{Status: 301, Protocol: "HTTP"}}, ProtocolHTTPS, "HTTPS to HTTP"},
		{"redirect relative path", Action{Redirect: &Redirect{Status: 301, Path: "x"}}, "", "must start with /"},
		{"redirect bad protocol", Action{Redirect: &Redirect{Status: 301, Protocol: "ftp"}}, "", `protocol "ftp"`},
		{"redirect bad port", Action{Redirect: &Redirect{Status: 301, Port: "70000"}}, "", `port "70000"`},
		{"fixed 3xx", Action{Fixed: &FixedResponse{Status: 302}}, "", "use 2xx, 4xx or 5xx"},
		{"fixed body too long", Action{Fixed: &FixedResponse{Status: 200, Body: strings.Repeat("x", 1025)}}, "", "1025 bytes: at most 1024"},
		{"fixed content type", Action{Fixed: &FixedResponse{Status: 200, ContentType: "image/png"}}, "", `content type "image/png"`},
		{"two actions", Action{Forward: "a", Redirect: &Redirect{Status: 301, Host: "x"}}, "", "only one of them"},
		{"group stickiness too long", Action{WeightedForward: []WeightedGroup{{"a", 1}}, GroupStickiness: 8 * 24 * time.Hour}, "", "group stickiness 192h0m0s: use 1s..7d"},
	}
	for _, c := range cases {
		_, _, err := (&Balancer{stats: map[[2]string]*stats.Route{}}).compileTest(c.action, c.proto, groups)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	if _, _, err := (&Balancer{stats: map[[2]string]*stats.Route{}}).compileTest(Action{Fixed: &FixedResponse{Status: 200, ContentType: "application/json; charset=utf-8", Body: strings.Repeat("x", 1024)}}, "", groups); err != nil {
		t.Errorf("a 1024-byte JSON fixed response: %v", err)
	}
}

// compileTest compiles a as the default action of a listener of protocol proto.
func (b *Balancer) compileTest(a Action, proto string, gcs []GroupConfig) (*route, map[string]*pool.Group, error) {
	groups := map[string]*pool.Group{}
	for _, gc := range gcs {
		groups[gc.Name] = &pool.Group{Name: gc.Name}
	}
	rt, err := b.compileRoute(ListenerConfig{Name: "web", Protocol: proto, Default: a}, groups)
	return rt, groups, err
}

func TestStickiness(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		a, b := namedRawBackend(t, "a"), namedRawBackend(t, "b")
		cfg := func(aServing, aDraining bool) Config {
			return Config{
				Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0", Default: Action{Forward: "web"}}},
				Groups: []GroupConfig{{Name: "web", Stickiness: &Stickiness{Type: StickinessLBCookie, Duration: time.Hour},
					Targets: []TargetConfig{{ID: "a", Address: a, Serving: aServing, Draining: aDraining}, serving("b", b)}}},
			}
		}
		lb := start(t, cfg(true, false))
		url := "http://" + lb.Addr("web") + "/"
		// A first request picks a target and gets a cookie naming it.
		_, first, h := get(t, client, url)
		cookie := h.Get("Set-Cookie")
		if !strings.HasPrefix(cookie, StickyCookieLB+"=") || !strings.Contains(cookie, "; Expires=") {
			t.Fatalf("Set-Cookie = %q, want a %s cookie with Expires", cookie, StickyCookieLB)
		}
		value := strings.TrimPrefix(strings.SplitN(cookie, ";", 2)[0], StickyCookieLB+"=")
		for range 20 {
			if _, body, h := get(t, client, url, "Cookie", "x=1; "+StickyCookieLB+"="+value); body != first || h.Get("Set-Cookie") == "" {
				t.Fatalf("a sticky request reached %q (Set-Cookie %q), want %q", body, h.Get("Set-Cookie"), first)
			}
		}
		// A bad cookie picks again: round robin reaches both targets.
		seen := map[string]bool{}
		for range 4 {
			_, body, _ := get(t, client, url, "Cookie", StickyCookieLB+"=garbage")
			seen[body] = true
		}
		if !seen["a"] || !seen["b"] {
			t.Errorf("a bad cookie did not pick anew: reached %v", seen)
		}
		tokenA := stickyToken("a")
		// A draining target keeps its sticky clients; new clients go elsewhere.
		if err := lb.Apply(cfg(false, true)); err != nil {
			t.Fatal(err)
		}
		if _, body, _ := get(t, client, url, "Cookie", StickyCookieLB+"="+tokenA); body != "a" {
			t.Errorf("a client stuck to draining target a reached %q", body)
		}
		for range 4 {
			if _, body, _ := get(t, client, url); body != "b" {
				t.Errorf("a new client reached %q while a drains", body)
			}
		}
		// An unhealthy (not serving, not draining) target loses its sticky clients.
		if err := lb.Apply(cfg(false, false)); err != nil {
			t.Fatal(err)
		}
		if _, body, h := get(t, client, url, "Cookie", StickyCookieLB+"="+tokenA); body != "b" || !strings.HasPrefix(h.Get("Set-Cookie"), StickyCookieLB+"="+stickyToken("b")) {
			t.Errorf("a client stuck to unavailable target a reached %q with Set-Cookie %q, want b and a new cookie", body, h.Get("Set-Cookie"))
		}
	})
}

func TestAppCookieStickiness(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		mk := func(name string) string {
			s := backend(t, name, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/login" {
					http.SetCookie(w, &http.Cookie{Name: "SESSION", Value: "s1"})
				}
				io.WriteString(w, name)
			})
			return addrOf(s)
		}
		cfg := Config{
			Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0", Default: Action{Forward: "web"}}},
			Groups: []GroupConfig{{Name: "web", Stickiness: &Stickiness{Type: StickinessAppCookie, Cookie: "SESSION"},
				Targets: []TargetConfig{serving("a", mk("a")), serving("b", mk("b"))}}},
		}
		lb := start(t, cfg)
		base := "http://" + lb.Addr("web")
		if _, _, h := get(t, client, base+"/"); strings.Contains(strings.Join(h.Values("Set-Cookie"), ";"), StickyCookieApp) {
			t.Errorf("%s set without the application setting its cookie", StickyCookieApp)
		}
		_, first, h := get(t, client, base+"/login")
		var token string
		for _, c := range h.Values("Set-Cookie") {
			if v, ok := strings.CutPrefix(c, StickyCookieApp+"="); ok {
				token = strings.SplitN(v, ";", 2)[0]
			}
		}
		if token == "" {
			t.Fatalf("no %s cookie when the application set SESSION: %v", StickyCookieApp, h.Values("Set-Cookie"))
		}
		for range 10 {
			if _, body, _ := get(t, client, base+"/", "Cookie", "SESSION=s1; "+StickyCookieApp+"="+token); body != first {
				t.Fatalf("sticky request reached %q, want %q", body, first)
			}
		}
	})
}

func TestStickinessIsChecked(t *testing.T) {
	cases := []struct {
		s    Stickiness
		want string
	}{
		{Stickiness{Type: "source_ip"}, `stickiness type "source_ip"`},
		{Stickiness{Type: StickinessLBCookie, Duration: 8 * 24 * time.Hour}, "use 1s..7d"},
		{Stickiness{Type: StickinessAppCookie}, "needs the application's cookie name"},
		{Stickiness{Type: StickinessAppCookie, Cookie: "BERTHLB"}, "needs the application's cookie name"},
	}
	for _, c := range cases {
		err := New(nil).Apply(Config{Groups: []GroupConfig{{Name: "g", Stickiness: &c.s}}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.s, err, c.want)
		}
	}
}

func TestForwardedForModesAndRequestID(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		seen := make(chan http.Header, 1)
		be := backend(t, "", func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() })
		cases := []struct {
			mode    string
			sent    []string
			wantXFF []string
			wantID  string // "" : a generated one
		}{
			{"", []string{"X-Forwarded-For", "203.0.113.7"}, []string{"203.0.113.7, 127.0.0.1"}, ""},
			{XFFAppend, nil, []string{"127.0.0.1"}, ""},
			{XFFPreserve, []string{"X-Forwarded-For", "203.0.113.7", "X-Request-Id", "abc-123"}, []string{"203.0.113.7"}, "abc-123"},
			{XFFPreserve, nil, nil, ""},
			{XFFRemove, []string{"X-Forwarded-For", "203.0.113.7", "X-Request-Id", "bad id with spaces"}, nil, ""},
		}
		for _, c := range cases {
			cfg := webConfig(serving("a", addrOf(be)))
			cfg.Listeners[0].XForwardedFor = c.mode
			lb := start(t, cfg)
			get(t, client, "http://"+lb.Addr("web")+"/", c.sent...)
			h := <-seen
			if got := h.Values("X-Forwarded-For"); strings.Join(got, "|") != strings.Join(c.wantXFF, "|") {
				t.Errorf("mode %q: X-Forwarded-For = %q, want %q", c.mode, got, c.wantXFF)
			}
			id := h.Get("X-Request-Id")
			switch {
			case c.wantID != "" && id != c.wantID:
				t.Errorf("mode %q: X-Request-Id = %q, want the client's %q", c.mode, id, c.wantID)
			case c.wantID == "" && (len(h.Values("X-Request-Id")) != 1 || !httpfront.ValidRequestID([]byte(id)) || strings.Contains(id, " ")):
				t.Errorf("mode %q: X-Request-Id = %q, want one generated", c.mode, h.Values("X-Request-Id"))
			}
		}
	})
}

func TestTooManyForwardedForAndJSONErrors(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		lb := start(t, webConfig())
		addrs := make([]string, 31)
		for i := range addrs {
			addrs[i] = "10.0.0.1"
		}
		url := "http://" + lb.Addr("web") + "/"
		code, body, _ := get(t, client, url, "X-Forwarded-For", strings.Join(addrs, ","))
		if code != 463 || !strings.HasPrefix(body, "463 ") {
			t.Errorf("31 forwarded addresses: %d %q, want 463", code, body)
		}
		code, body, h := get(t, client, url, "Accept", "text/html, application/json;q=0.9")
		var page struct {
			Error  string `json:"error"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil || code != 503 || page.Status != 503 || h.Get("Content-Type") != "application/json" {
			t.Errorf("JSON error page: %d %q %q (%v)", code, h.Get("Content-Type"), body, err)
		}
		if code, body, _ := get(t, client, url, "X-Forwarded-For", strings.Join(addrs[:30], ",")); code != 503 || !strings.HasPrefix(body, "503 ") {
			t.Errorf("30 forwarded addresses and no target: %d %q, want a text 503", code, body)
		}
	})
}

func TestHeaderLimitsOnBothProtocols(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		be := backend(t, "a", func(http.ResponseWriter, *http.Request) {})
		lb := start(t, webConfig(serving("a", addrOf(be))))
		url := "http://" + lb.Addr("web") + "/"
		cases := []struct {
			name string
			url  string
			hdr  []string
			want int
		}{
			{"a 15 KiB header passes", url, []string{"X-Big", strings.Repeat("x", 15<<10)}, 200},
			{"a header over 16 KiB", url, []string{"X-Big", strings.Repeat("x", 17<<10)}, 431},
			{"a request target over 16 KiB", url + "?q=" + strings.Repeat("x", 17<<10), nil, 431},
		}
		for _, c := range cases {
			if code, _, _ := get(t, client, c.url, c.hdr...); code != c.want {
				t.Errorf("%s: status %d, want %d", c.name, code, c.want)
			}
		}
		// Over 64 KiB in all: HTTP/1.1 answers 431; over HTTP/2 the limit is
		// announced in SETTINGS, and Go's client refuses to send such a request.
		req, _ := http.NewRequest("GET", url, nil)
		for i := range 5 {
			req.Header.Set("X-Many-"+strconv.Itoa(i), strings.Repeat("y", 15<<10))
		}
		resp, err := client.Do(req)
		switch {
		case proto == "HTTP/1.1" && (err != nil || resp.StatusCode != 431):
			t.Errorf("75 KiB of headers: %v %v, want 431", resp, err)
		case proto == "HTTP/2.0" && (err == nil || !strings.Contains(err.Error(), "header list")):
			t.Errorf("75 KiB of headers over HTTP/2: %v %v, want the client to refuse by the announced limit", resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	})
}

func TestHTTPAccessLog(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		be := namedRawBackend(t, "a")
		path := filepath.Join(t.TempDir(), "access.log")
		cfg := webConfig(serving("a", be))
		cfg.AccessLog = path
		cfg.Listeners[0].Rules = []Rule{{Priority: 7, Paths: []string{"/old"}, Action: Action{Redirect: &Redirect{Status: 301, Path: "/new"}}}}
		lb := New(nil)
		if err := lb.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		get(t, client, "http://"+lb.Addr("web")+"/x?y=1", "User-Agent", `ua "quoted"`, "X-Request-Id", "req-1")
		get(t, client, "http://"+lb.Addr("web")+"/old")
		lb.Shutdown(t.Context())
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 2 {
			t.Fatalf("%d lines, want 2:\n%s", len(lines), data)
		}
		var recs [2]map[string]any
		for i, l := range lines {
			if err := json.Unmarshal([]byte(l), &recs[i]); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
		}
		want := map[string]any{"type": "http", "listener": "web", "client": "127.0.0.1", "target": "a", "target_address": be,
			"elb_status_code": 200.0, "target_status_code": 200.0, "request": "GET /x?y=1 " + proto, "user_agent": `ua "quoted"`,
			"group": "web", "matched_rule_priority": 0.0, "actions_executed": "forward", "request_id": "req-1"}
		for k, v := range want {
			if recs[0][k] != v {
				t.Errorf("forward: %s = %v, want %v", k, recs[0][k], v)
			}
		}
		for _, k := range []string{"request_processing_time", "target_processing_time", "response_processing_time"} {
			if v, _ := recs[0][k].(float64); v < 0 {
				t.Errorf("forward: %s = %v, want a time", k, recs[0][k])
			}
		}
		if n, _ := recs[0]["sent_bytes"].(float64); n <= 0 {
			t.Errorf("sent_bytes = %v", recs[0]["sent_bytes"])
		}
		if recs[1]["actions_executed"] != "redirect" || recs[1]["matched_rule_priority"] != 7.0 || !strings.HasSuffix(recs[1]["redirect_url"].(string), "/new") || recs[1]["target_processing_time"] != -1.0 {
			t.Errorf("redirect record: %v", recs[1])
		}
	})
}

func TestHTTPSAccessLogNamesTheTLSSession(t *testing.T) {
	for h2, proto := range map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			pki := newTestPKI(t)
			path := filepath.Join(t.TempDir(), "access.log")
			cfg := httpsConfig([]Certificate{pki.leaf(t, "one.example.com")}, serving("a", namedRawBackend(t, "a")))
			cfg.AccessLog = path
			lb := New(nil)
			if err := lb.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			client := httpsClient("one.example.com", pki, h2)
			client.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS12
			client.Transport.(*http.Transport).TLSClientConfig.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
			if code, _, _ := get(t, client, "https://"+lb.Addr("web")+"/"); code != 200 {
				t.Fatalf("status %d", code)
			}
			lb.Shutdown(t.Context())
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(data, &rec); err != nil {
				t.Fatalf("%q: %v", data, err)
			}
			if rec["type"] != "https" || rec["tls_protocol"] != "TLS 1.2" || !strings.HasPrefix(rec["tls_cipher"].(string), "TLS_ECDHE_") || rec["request"] != "GET / "+proto {
				t.Errorf("record %v: want type https, tls_protocol TLS 1.2, an ECDHE cipher and request GET / %s", rec, proto)
			}
		})
	}
}

// BenchmarkProxyKeepAliveWithAccessLog is BenchmarkProxyKeepAlive with the
// access log on: a line per request must not allocate either.
func BenchmarkProxyKeepAliveWithAccessLog(b *testing.B) {
	benchmarkProxyKeepAlive(b, filepath.Join(b.TempDir(), "access.log"))
}

// TestConnectionListedFieldsStayOnTheirHop sends fields that the Connection
// header names (hop-by-hop, RFC 9110 7.6.1) both ways: neither the target nor
// the client gets them.
func TestConnectionListedFieldsStayOnTheirHop(t *testing.T) {
	seen := make(chan http.Header, 1)
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("X-Target-Hop", "1")
		w.Header().Set("X-Target-End", "1")
		w.Header().Set("Connection", "X-Target-Hop")
	})
	lb := start(t, webConfig(serving("a", addrOf(be))))
	conn := dial(t, lb.Addr("web"))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Client-Hop: 1\r\nX-Client-End: 1\r\nConnection: close, x-client-hop\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	answer := string(raw)
	h := <-seen
	if h.Get("X-Client-Hop") != "" || h.Get("X-Client-End") != "1" {
		t.Errorf("the target got X-Client-Hop %q and X-Client-End %q, want none and 1", h.Get("X-Client-Hop"), h.Get("X-Client-End"))
	}
	if strings.Contains(answer, "X-Target-Hop") || !strings.Contains(answer, "X-Target-End: 1") {
		t.Errorf("the client got:\n%s\nwant X-Target-End and no X-Target-Hop", answer)
	}
}

// startWithBigResponses starts a balancer with an idle timeout of a second
// in front of a target whose every answer is 256 MiB; writeFailed is closed
// when a write of the target fails.
func startWithBigResponses(t *testing.T) (lb *Balancer, writeFailed <-chan struct{}) {
	failed := make(chan struct{})
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 4096 { // 256 MiB, far more than the buffers between
			if _, err := w.Write(chunk); err != nil {
				close(failed)
				return
			}
		}
	})
	cfg := webConfig(serving("a", addrOf(be)))
	cfg.Listeners[0].IdleTimeout = time.Second
	return start(t, cfg), failed
}

// TestClientThatStopsReadingIsLetGo asks for a large response and reads none
// of it: after the listener's idle timeout without progress berth gives up
// on the client, the target's connection is closed and nothing stays in
// flight, over both protocols.
func TestClientThatStopsReadingIsLetGo(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		lb, writeFailed := startWithBigResponses(t)
		resp, err := client.Get("http://" + lb.Addr("web") + "/big")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close() // read nothing
		select {
		case <-writeFailed:
		case <-time.After(5 * time.Second): // before the client's own 10 s timeout gives up
			t.Fatal("the target still writes 5 s after the client stopped reading (idle timeout 1 s)")
		}
		eventually(t, "nothing in flight to the target", func() bool { return lb.Targets()[0].InFlight == 0 })
	})
}

// pacedBody sends pieces bytes one at a time with pause between them, and
// stalls for stall before its last byte.
type pacedBody struct {
	pieces       int
	pause, stall time.Duration
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.pieces == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.pause)
	if b.pieces == 1 {
		time.Sleep(b.stall)
	}
	b.pieces--
	p[0] = 'x'
	return 1, nil
}

// TestSlowAndStalledUploads sends a request body slowly (longer in all than
// the idle timeout, never idle as long), then one that stalls: the first
// reaches the target whole, the second is answered 408 without blaming the
// target.
func TestSlowAndStalledUploads(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, strconv.Itoa(len(b)))
		})
		cfg := webConfig(serving("a", addrOf(be)))
		cfg.Listeners[0].IdleTimeout = time.Second
		lb := start(t, cfg)
		url := "http://" + lb.Addr("web") + "/upload"
		post := func(body *pacedBody) (int, string, error) {
			req, _ := http.NewRequest("POST", url, body)
			req.ContentLength = int64(body.pieces)
			resp, err := client.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(answer), nil
		}
		if code, answer, err := post(&pacedBody{pieces: 12, pause: 150 * time.Millisecond}); code != 200 || answer != "12" {
			t.Errorf("a slow upload (1.8 s, pauses of 150 ms): %d %q %v, want 200 and the 12 bytes at the target", code, answer, err)
		}
		stalled := func() (int, error) {
			if proto == "HTTP/2.0" {
				code, _, err := post(&pacedBody{pieces: 3, stall: 3 * time.Second})
				return code, err
			}
			// Go's HTTP/1.1 client reports its own failed write, not the
			// answer that came meanwhile: a raw client reads the answer.
			conn, err := net.Dial("tcp", lb.Addr("web"))
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nxxx")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		if code, err := stalled(); code != 408 {
			t.Errorf("an upload stalled (idle timeout 1 s): %d %v, want 408", code, err)
		}
		if st := lb.Targets()[0]; st.Failures != 0 || st.Ejected {
			t.Errorf("the target was blamed for the client's stall: %d failures, ejected %v", st.Failures, st.Ejected)
		}
	})
}

// TestEarlyAnswerToAnUpload has the target answer 413 as soon as it has read
// the head of a large upload, and close: the client gets that 413 (not a
// 502), over both protocols.
func TestEarlyAnswerToAnUpload(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		target := tcpServer(t, func(c net.Conn) {
			if readHead(bufio.NewReader(c)) != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
		})
		lb := start(t, webConfig(serving("a", target)))
		// 64 MiB, sent as it is read: far more than the socket buffers
		// between take, so the target's close cuts it off.
		const size = 64 << 20
		if proto == "HTTP/1.1" {
			if code, err := rawUpload(lb.Addr("web"), size); code != 413 {
				t.Fatalf("got %d (%v), want the target's 413", code, err)
			}
			return
		}
		req, _ := http.NewRequest("POST", "http://"+lb.Addr("web")+"/upload", io.LimitReader(zeroes{}, size))
		req.ContentLength = size
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || string(answer) != "too large" {
			t.Fatalf("got %d %q, want the target's 413", resp.StatusCode, answer)
		}
	})
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// rawUpload sends a request head with a body of n bytes and the body, and
// reads the answer meanwhile: Go's HTTP/1.1 client reports its own failed
// write rather than an answer that came before the body ended.
func rawUpload(addr string, n int64) (int, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.FormatInt(n, 10)+"\r\n\r\n")
		io.Copy(conn, io.LimitReader(zeroes{}, n))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestFixedResponsesOnBothProtocols checks a fixed response's status, type
// and body, and the 404 of a listener without a default, over both protocols.
func TestFixedResponsesOnBothProtocols(t *testing.T) {
	bothProtocols(t, func(t *testing.T, client *http.Client, proto string) {
		cfg := Config{Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0", Rules: []Rule{{Priority: 1, Paths: []string{"/teapot"},
			Action: Action{Fixed: &FixedResponse{Status: 418, ContentType: "application/json", Body: `{"short":"stout"}`}}}}}}}
		lb := start(t, cfg)
		base := "http://" + lb.Addr("web")
		if code, body, h := get(t, client, base+"/teapot"); code != 418 || body != `{"short":"stout"}` || h.Get("Content-Type") != "application/json" {
			t.Errorf("fixed response: %d %q %q", code, h.Get("Content-Type"), body)
		}
		if code, body, h := get(t, client, base+"/elsewhere"); code != 404 || body != "404 Not Found\n" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
			t.Errorf("no default action: %d %q %q, want the text 404", code, h.Get("Content-Type"), body)
		}
	})
}
