package balancer

import (
	"context"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// h2loadResult is what the test reads from h2load's report.
type h2loadResult struct {
	total, started, done, succeeded, failed, errored, timeout int
	status2xx, status3xx, status4xx, status5xx                int
	proto                                                     string
}

var (
	h2loadRequests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout$`)
	h2loadStatus   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx$`)
	h2loadProto    = regexp.MustCompile(`(?m)^Application protocol: (\S+)$`)
)

// runH2load runs h2load as a real process and parses its report; a report
// without the lines it needs fails the test with h2load's whole output.
func runH2load(t *testing.T, args ...string) h2loadResult {
	t.Helper()
	path, err := exec.LookPath("h2load")
	if err != nil {
		t.Fatal("h2load is not on PATH: run scripts/ensure-tools.sh (make test runs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("h2load %v: %v\n%s", args, err, out)
	}
	reqs, status, proto := h2loadRequests.FindSubmatch(out), h2loadStatus.FindSubmatch(out), h2loadProto.FindSubmatch(out)
	if reqs == nil || status == nil || proto == nil {
		t.Fatalf("h2load %v: no requests, status codes or application protocol line in its report:\n%s", args, out)
	}
	n := func(b []byte) int { v, _ := strconv.Atoi(string(b)); return v }
	return h2loadResult{
		total: n(reqs[1]), started: n(reqs[2]), done: n(reqs[3]), succeeded: n(reqs[4]),
		failed: n(reqs[5]), errored: n(reqs[6]), timeout: n(reqs[7]),
		status2xx: n(status[1]), status3xx: n(status[2]), status4xx: n(status[3]), status5xx: n(status[4]),
		proto: string(proto[1]),
	}
}

// TestH2loadThroughHTTPSAndH2C drives many concurrent HTTP/2 streams through
// berth with a client that is not Go's, over TLS (ALPN h2) and over h2c with
// prior knowledge, to an HTTP/1.1 target; and checks that answers berth makes
// itself (a fixed response, a group without targets) come back as such.
func TestH2loadThroughHTTPSAndH2C(t *testing.T) {
	// The target counts the requests it sees by X-Forwarded-Proto: https, http, anything else.
	var seen [3]atomic.Int64
	app := backend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Forwarded-Proto") {
		case "https":
			seen[0].Add(1)
		case "http":
			seen[1].Add(1)
		default:
			seen[2].Add(1)
		}
		w.Write([]byte("ok"))
	})
	pki := newTestPKI(t)
	cfg := httpsConfig([]Certificate{pki.leaf(t, "h2load.example.com")}, serving("a", addrOf(app)))
	// Another loopback address: two listeners may not both ask for 127.0.0.1:0.
	cfg.Listeners = append(cfg.Listeners, ListenerConfig{Name: "plain", Address: "127.0.0.2:0", Default: Action{Forward: "web"}})
	for i := range cfg.Listeners {
		cfg.Listeners[i].Rules = []Rule{
			{Priority: 1, Paths: []string{"/teapot"}, Action: Action{Fixed: &FixedResponse{Status: 418, Body: "short and stout"}}},
			{Priority: 2, Paths: []string{"/nobody"}, Action: Action{Forward: "empty"}},
		}
	}
	cfg.Groups = append(cfg.Groups, GroupConfig{Name: "empty"})
	lb := start(t, cfg)
	https, plain := "https://"+lb.Addr("web"), "http://"+lb.Addr("plain")

	const n, small = 2000, 200
	for _, tc := range []struct {
		name     string
		url      string
		requests int
		wantSeen [3]int64
		want     h2loadResult
	}{
		{"https forwarded", https + "/app", n, [3]int64{n, 0, 0},
			h2loadResult{total: n, started: n, done: n, succeeded: n, status2xx: n, proto: "h2"}},
		{"h2c forwarded", plain + "/app", n, [3]int64{0, n, 0},
			h2loadResult{total: n, started: n, done: n, succeeded: n, status2xx: n, proto: "h2c"}},
		// h2load counts a 4xx or 5xx answer as done but failed.
		{"https fixed 418", https + "/teapot", small, [3]int64{},
			h2loadResult{total: small, started: small, done: small, failed: small, status4xx: small, proto: "h2"}},
		{"h2c no target 503", plain + "/nobody", small, [3]int64{},
			h2loadResult{total: small, started: small, done: small, failed: small, status5xx: small, proto: "h2c"}},
	} {
		var before, delta [3]int64
		for i := range seen {
			before[i] = seen[i].Load()
		}
		got := runH2load(t, "-n", strconv.Itoa(tc.requests), "-c", "10", "-m", "10", tc.url)
		if got != tc.want {
			t.Errorf("%s: h2load reported\n%+v, want\n%+v", tc.name, got, tc.want)
		}
		for i := range seen {
			delta[i] = seen[i].Load() - before[i]
		}
		if delta != tc.wantSeen {
			t.Errorf("%s: the target saw %v requests (https, http, other X-Forwarded-Proto), want %v", tc.name, delta, tc.wantSeen)
		}
	}
}
