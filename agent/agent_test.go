package agent

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/balancer"
	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/freeport"
)

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestConfigReload runs an agent without Docker on static targets and edits
// its config file: a good change takes effect, a bad file and a file the
// balancer cannot apply leave the last good config in force.
func TestConfigReload(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "static") }))
	defer be.Close()
	web, admin := freeport.TCP(t), freeport.TCP(t)
	base := fmt.Sprintf(`node: {name: test, advertise: 127.0.0.1}
docker: {enabled: false}
cluster: {enabled: false}
admin: {listen: %s}
static:
  app: [%s]
listeners:
  - name: web
    protocol: http
    address: %s
    default: {forward: app}
`, admin, strings.TrimPrefix(be.URL, "http://"), web)
	ra := startAgentWith(t, web, base)
	if code := status(ra.url + "/teapot"); code != 200 {
		t.Fatalf("before reload: %d", code)
	}
	withRule := base + `    rules:
      - priority: 5
        path: /teapot
        fixed-response: {status: 418, body: short and stout}
`
	write := func(text string) {
		if err := os.WriteFile(ra.file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(withRule)
	dockertest.Eventually(t, 10*time.Second, func() bool { return status(ra.url+"/teapot") == 418 }, "the new rule was not applied")

	failures := func() int {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if rest, ok := strings.CutPrefix(line, `berth_config_reloads_total{result="failure"} `); ok {
				n, _ := strconv.Atoi(rest)
				return n
			}
		}
		return 0
	}
	write(withRule + "    bogus-key: 1\n")
	dockertest.Eventually(t, 10*time.Second, func() bool { return failures() == 1 }, "a bad file was not counted as a failed reload")
	if code := status(ra.url + "/teapot"); code != 418 {
		t.Fatalf("after a bad file: %d, want the last good config's 418", code)
	}

	// Valid, but the new listener's port is taken: Apply fails and nothing changes.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	write(withRule + "  - name: other\n    protocol: http\n    address: " + taken.Addr().String() + "\n    default: {forward: app}\n")
	dockertest.Eventually(t, 10*time.Second, func() bool { return failures() == 2 }, "a config whose port is taken was not counted as a failed reload")
	for _, l := range ra.agent.Status().Listeners {
		if l.Name == "other" {
			t.Fatal("the refused config's listener is shown")
		}
	}
	if code := status(ra.url + "/teapot"); code != 418 {
		t.Fatalf("after a refused config: %d, want the last good config's 418", code)
	}
}

// metric returns the value of one series on the agent's /metrics (-1 when absent).
func metric(t *testing.T, admin, series string) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			n, _ := strconv.Atoi(rest)
			return n
		}
	}
	return -1
}

// TestListenerConnectionLimit sets max-connections in the file: the
// connection over it is reset and counted on /metrics, beside the panics
// and access-log drops (none).
func TestListenerConnectionLimit(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "static") }))
	defer be.Close()
	web, admin := freeport.TCP(t), freeport.TCP(t)
	ra := startAgentWith(t, web, fmt.Sprintf(`node: {name: test, advertise: 127.0.0.1}
docker: {enabled: false}
cluster: {enabled: false}
admin: {listen: %s}
log: {access: %s}
static:
  app: [%s]
listeners:
  - name: web
    address: %s
    max-connections: 1
    default: {forward: app}
`, admin, t.TempDir()+"/access.log", strings.TrimPrefix(be.URL, "http://"), web))
	held, err := net.Dial("tcp", web)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	io.WriteString(held, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, err := held.Read(make([]byte, 1)); err != nil {
		t.Fatalf("the first connection: %v", err)
	}
	if code := status(ra.url + "/"); code != 0 {
		t.Fatalf("a second connection was answered %d with max-connections 1", code)
	}
	for series, want := range map[string]int{
		`berth_listener_connections_refused_total{listener="web",reason="limit"}`: 1,
		`berth_panics_total{component="listener",listener="web"}`:                 0,
		`berth_panics_total{component="health_check",listener=""}`:                0,
		`berth_panics_total{component="idle_park",listener=""}`:                   0,
		`berth_access_log_dropped_total`:                                          0,
	} {
		if got := metric(t, admin, series); got != want {
			t.Errorf("%s = %d, want %d", series, got, want)
		}
	}
}

// TestGroupsCountFailuresAndLatency: a group's failures are its targets',
// its latency histogram sums every listener that forwards to it, and each
// target's histogram times its tries.
func TestGroupsCountFailuresAndLatency(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" { // closed without an answer: a failure of the target
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		io.WriteString(w, "static")
	}))
	defer be.Close()
	web, other := freeport.TCP(t), freeport.TCP(t)
	ra := startAgentWith(t, web, fmt.Sprintf(`node: {name: test, advertise: 127.0.0.1}
docker: {enabled: false}
cluster: {enabled: false}
admin: {listen: %s}
static:
  app: [%s]
listeners:
  - {name: web, protocol: http, address: %s, default: {forward: app}}
  - {name: other, protocol: http, address: %s, default: {forward: app}}
`, freeport.TCP(t), strings.TrimPrefix(be.URL, "http://"), web, other))
	for i := range 10 {
		url := ra.url
		if i%2 == 1 {
			url = "http://" + other
		}
		if code := status(url + "/"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if code := status(ra.url + "/broken"); code != 502 {
		t.Fatalf("/broken: %d, want 502", code)
	}
	app := func() api.Group {
		for _, g := range ra.agent.Groups() {
			if g.Name == "app" {
				return g
			}
		}
		return api.Group{}
	}
	last := func(l api.Latency) uint64 { return l.Counts[len(l.Counts)-1] }
	// The last answer is timed just after it is sent.
	dockertest.Eventually(t, 5*time.Second, func() bool { return last(app().Latency) == 11 }, "latency %+v: want the 11 requests of both listeners", app().Latency)
	g := app()
	// /broken was tried again (a GET that got no byte back) and failed each time.
	if g.Failures == 0 || g.Requests != 10+g.Failures {
		t.Errorf("%d failures of %d tries, want /broken's tries of 10 good requests and it", g.Failures, g.Requests)
	}
	l := g.Latency
	if !slices.Equal(l.Bounds, balancer.LatencyBuckets) || len(l.Counts) != len(l.Bounds)+1 || l.Sum <= 0 {
		t.Fatalf("latency %+v: want the buckets of berth_http_request_duration_seconds", l)
	}
	for i := 1; i < len(l.Counts); i++ {
		if l.Counts[i] < l.Counts[i-1] {
			t.Fatalf("latency counts %v are not cumulative", l.Counts)
		}
	}
	targets := ra.agent.Targets()
	if len(targets) != 1 || last(targets[0].Latency) != targets[0].Requests || targets[0].Latency.Sum <= 0 {
		t.Fatalf("targets %+v: want one whose latency times each of its tries", targets)
	}
}
