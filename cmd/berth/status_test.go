package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/agent/admin"
	"github.com/berth-lb/berth/agent/admin/admintest"
	"github.com/berth-lb/berth/agent/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Other test files of this package may define -update too: define it only once, whichever
// file gets there first, and read it by name.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files in testdata/")
	}
}

func updatingGoldens() bool {
	return flag.Lookup("update").Value.String() == "true"
}

type fakeSource = admintest.Source

var testNow = time.Date(2025, 3, 2, 12, 30, 15, 0, time.UTC)

func busySource() fakeSource {
	nodes := []api.Node{
		{Name: "host-a@dn1b2c3d4e5f", Node: "host-a", Address: "10.0.0.5:7946", State: "alive", Seq: 42, Known: 42, Targets: 4, ConfigHash: "3f2a9c1d0b7e", Self: true},
		{Name: "host-b@dn1b2c3d9x8y", Node: "host-b", Address: "10.0.0.6:7946", State: "alive", Seq: 17, Known: 17, Targets: 1, ConfigHash: "8e1f0a2b3c4d", ConfigDrift: true},
		{Name: "host-c@dn1b2c0a1b2c", Node: "host-c", Address: "10.0.0.7:7946", State: "dead", Seq: 9, Known: 9, Targets: 2, ConfigHash: "3f2a9c1d0b7e"},
		{Name: "host-d@dn1b2c1d2e3f", Node: "host-d", Address: "10.0.0.8:7946", State: "alive", Suspect: true, Seq: 5, Known: 5, Targets: 1, ConfigHash: "3f2a9c1d0b7e"},
	}
	web := api.Group{Name: "web", Algorithm: "least_outstanding_requests", Protocol: "https", DeregistrationDelay: "30s", Targets: 3,
		States: map[string]int{"healthy": 1, "draining": 1, "unhealthy": 1}, InFlight: 4, Requests: 10452}
	users := api.Group{Name: "users", Algorithm: "round_robin", Protocol: "http", DeregistrationDelay: "5m0s", Targets: 1,
		States: map[string]int{"healthy": 1}, Requests: 87}
	return fakeSource{
		StatusDoc: api.Status{
			Node:    "host-a",
			Version: "v0.3.0",
			Started: testNow.Add(-(26*time.Hour + 4*time.Minute + 9*time.Second)),
			Docker:  api.Docker{Connected: true, LastSync: testNow.Add(-12 * time.Second)},
			Listeners: []api.Listener{
				{Name: "web", Protocol: "http", Address: "0.0.0.0:80", Default: "fixed-response 404", Rules: []api.Rule{
					{Priority: 10, Paths: []string{"/api/users/*"}, Action: "forward users", Source: "config"},
					{Priority: 100, Paths: []string{"/*"}, Action: "forward web", Source: "labels"},
				}},
				{Name: "db", Protocol: "tcp", Address: "0.0.0.0:5432", Default: "forward postgres"},
			},
			Groups: []api.Group{web, users},
			Nodes:  nodes,
			// The fleet runs with cluster.insecure: status warns.
			ClusterInsecure: true,
			Skipped: []api.Skipped{
				{Container: "9f3c2a1b7d4e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8", Name: "api-2", Reason: "several published ports (8080, 9090) and no berth.port label; set berth.port"},
			},
			LabelProblems: []api.LabelProblem{
				{Container: "4b5c6d7e8f9a0b1c2d3e4f5a6b7c89f3c2a1b7d4e8f0a1b2c3d4e5f6071829", Name: "shop-1", Reason: `label berth.rule.path="shop/*": want comma-separated paths starting with /, * and ? allowed, up to 128 characters each (e.g. /api/*,/health) (the rule is left out)`},
			},
		},
		GroupList: []api.Group{web, users},
		NodeList:  nodes,
		TargetList: []api.Target{
			{ID: "host-b/5e6f7a8b9c0d/8080", Group: "web", Node: "host-b", Address: "10.0.0.6:32770", State: "unhealthy", Container: "5e6f7a8b9c0d", Source: "gossip", Failures: 3},
			{ID: "host-a/1a2b3c4d5e6f/8080", Group: "web", Node: "host-a", Address: "10.0.0.5:32768", State: "healthy", Container: "1a2b3c4d5e6f", Source: "docker", InFlight: 4, Requests: 10210},
			{ID: "host-a/3c4d5e6f7a8b/8080", Group: "web", Node: "host-a", Address: "10.0.0.5:32769", State: "draining", Container: "3c4d5e6f7a8b", Source: "docker", Requests: 242, Failures: 1},
			{ID: "host-d/6f7a8b9c0d1e/8080", Group: "web", Node: "host-d", Address: "10.0.0.8:32772", State: "healthy", Suspect: true, Container: "6f7a8b9c0d1e", Source: "gossip", Requests: 12},
			{ID: "host-a/7a8b9c0d1e2f/9000", Group: "users", Node: "host-a", Address: "127.0.0.1:32771", LocalOnly: true, State: "healthy", Container: "7a8b9c0d1e2f", Source: "docker", Requests: 87},
			{ID: "static/127.0.0.1:9001", Group: "bench", Node: "host-a", Address: "127.0.0.1:9001", State: "healthy", Source: "static"},
		},
	}
}

func idleSource() fakeSource {
	return fakeSource{StatusDoc: api.Status{
		Node:    "host-c",
		Version: "dev",
		Started: testNow.Add(-42 * time.Second),
		Docker:  api.Docker{Error: "docker: connect to unix:///var/run/docker.sock: permission denied; add the agent's user to the docker group"},
	}}
}

// serveAdmin starts the admin API of src and answers its address as host:port.
func serveAdmin(t *testing.T, src admin.Source) string {
	t.Helper()
	return serveAdminWith(t, src, admin.Access{})
}

// serveAdminWith is serveAdmin with access's checks, on a loopback listener.
func serveAdminWith(t *testing.T, src admin.Source, access admin.Access) string {
	t.Helper()
	server := httptest.NewServer(admin.Handler(src, prometheus.NewRegistry(), access))
	t.Cleanup(server.Close)
	return server.Listener.Addr().String()
}

func fixClock(t *testing.T) {
	t.Helper()
	previous := now
	now = func() time.Time { return testNow }
	t.Cleanup(func() { now = previous })
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if updatingGoldens() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run go test -update to create it", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestStatusAndTargetsOutput(t *testing.T) {
	fixClock(t)
	t.Setenv("BERTH_ADMIN", "") // the help shows the default address
	t.Setenv("BERTH_ADMIN_TOKEN_FILE", "")
	busy := serveAdmin(t, busySource())
	idle := serveAdmin(t, idleSource())
	tests := []struct {
		golden string
		run    func(args []string, stdout, stderr io.Writer) error
		args   []string
	}{
		{"status", runStatus, []string{"--admin", busy}},
		{"status_idle", runStatus, []string{"--admin", idle}},
		{"status_json", runStatus, []string{"--admin", busy, "--output", "json"}},
		{"targets", runTargets, []string{"--admin", busy}},
		{"targets_group", runTargets, []string{"--admin", busy, "--group", "web"}},
		{"targets_json", runTargets, []string{"--admin", busy, "-o", "json", "-g", "users"}},
		{"targets_none", runTargets, []string{"--admin", idle}},
		{"status_help", runStatus, []string{"--help"}},
		{"targets_help", runTargets, []string{"-h"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := tt.run(tt.args, &stdout, &stderr); err != nil {
				t.Fatalf("error: %v", err)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
			checkGolden(t, tt.golden, stdout.Bytes())
		})
	}
}

func TestAdminAddressForms(t *testing.T) {
	address := serveAdmin(t, busySource())
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  string
		args []string
	}{
		{"host:port", "", []string{"--admin", address}},
		{"url", "", []string{"--admin", "http://" + address + "/"}},
		{"empty host means this host", "", []string{"--admin", ":" + port}},
		{"env", address, nil},
		{"flag wins over env", "192.0.2.1:1", []string{"--admin", address}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BERTH_ADMIN", tt.env)
			var stdout bytes.Buffer
			if err := runTargets(append(tt.args, "-o", "json"), &stdout, io.Discard); err != nil {
				t.Fatalf("error: %v", err)
			}
			if !strings.Contains(stdout.String(), `"id": "host-a/1a2b3c4d5e6f/8080"`) {
				t.Errorf("stdout = %q, want the targets of the agent", stdout.String())
			}
		})
	}
}

func TestStatusAndTargetsErrors(t *testing.T) {
	address := serveAdmin(t, busySource())
	notBerth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/targets":
			http.Error(w, "upstream down", http.StatusBadGateway)
		case "/api/v1/status":
			w.Write([]byte(`["not", "a", "status"]`))
		default:
			w.Write([]byte("<html>hello</html>"))
		}
	}))
	t.Cleanup(notBerth.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	unreachable := closedAddress(t)

	tests := []struct {
		name    string
		run     func(args []string, stdout, stderr io.Writer) error
		args    []string
		wantErr string
	}{
		{
			"agent not running", runStatus, []string{"--admin", unreachable},
			"cannot reach the agent at " + unreachable + ": dial tcp " + unreachable + ": connect: connection refused; is `berth agent` running? set --admin or BERTH_ADMIN",
		},
		{
			"agent too slow", runTargets, []string{"--admin", slow.Listener.Addr().String(), "--timeout", "50ms"},
			"cannot reach the agent at " + slow.Listener.Addr().String() + ": no answer within 50ms (raise --timeout if the agent is busy); is `berth agent` running? set --admin or BERTH_ADMIN",
		},
		{
			"unknown group", runTargets, []string{"--admin", address, "--group", "webb"},
			`the agent answered 404 Not Found: admin: no target group "webb"; known groups: users, web`,
		},
		{
			"not a berth agent, error answer", runTargets, []string{"--admin", notBerth.URL},
			"the agent at " + notBerth.URL + " answered 502 Bad Gateway without a berth API error; is --admin pointing at a berth agent?",
		},
		{
			"not a berth agent, html answer", runStatus, []string{"--admin", notBerth.URL + "/html", "-o", "json"},
			"the answer of " + notBerth.URL + "/html to /api/v1/status is not JSON; is --admin pointing at a berth agent?",
		},
		{
			"not a berth agent, other JSON", runStatus, []string{"--admin", notBerth.URL},
			"the answer of " + notBerth.URL + " to /api/v1/status is not a berth API document (json: cannot unmarshal array into Go value of type api.Status); are the CLI and the agent the same version?",
		},
		{
			"bad output", runStatus, []string{"--admin", address, "-o", "yaml"},
			`invalid --output "yaml": want table or json`,
		},
		{
			"bad timeout", runStatus, []string{"--admin", address, "--timeout", "0s"},
			"invalid --timeout 0s: want a positive duration such as 5s",
		},
		{
			"unparsable timeout", runStatus, []string{"--timeout", "5"},
			`invalid argument "5" for "--timeout" flag: time: missing unit in duration "5"; run 'berth status --help' for the flags`,
		},
		{
			"unknown flag", runTargets, []string{"--grop", "web"},
			"unknown flag: --grop; run 'berth targets --help' for the flags",
		},
		{
			"positional argument", runTargets, []string{"web"},
			`unexpected argument "web"; run 'berth targets --help' for the flags`,
		},
		{
			"address without port", runStatus, []string{"--admin", "localhost"},
			`invalid admin address "localhost": want host:port or http://host:port (set with --admin or BERTH_ADMIN)`,
		},
		{
			"address with another scheme", runStatus, []string{"--admin", "tcp://127.0.0.1:9900"},
			`invalid admin address "tcp://127.0.0.1:9900": want host:port or http://host:port (set with --admin or BERTH_ADMIN)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := tt.run(tt.args, &stdout, io.Discard)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error = %v\nwant    %s", err, tt.wantErr)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing on error", stdout.String())
			}
		})
	}
}

// The default address comes from BERTH_ADMIN, else 127.0.0.1:9900.
func TestDefaultAdminAddress(t *testing.T) {
	t.Setenv("BERTH_ADMIN", "")
	flags, options := newAdminFlagSet("status", "berth status", io.Discard)
	if err := flags.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if options.address != "127.0.0.1:9900" {
		t.Errorf("default --admin = %q, want 127.0.0.1:9900", options.address)
	}
	t.Setenv("BERTH_ADMIN", "10.0.0.5:9900")
	flags, options = newAdminFlagSet("status", "berth status", io.Discard)
	if err := flags.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if options.address != "10.0.0.5:9900" {
		t.Errorf("--admin with BERTH_ADMIN set = %q, want 10.0.0.5:9900", options.address)
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{1499 * time.Millisecond, "1s"},
		{3*time.Hour + 2*time.Minute, "3h2m0s"},
		{49*time.Hour + 5*time.Second, "2d1h0m5s"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.in); got != tt.want {
			t.Errorf("formatDuration(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// closedAddress answers a 127.0.0.1 address on which nothing listens.
func closedAddress(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	if err := listener.Close(); err != nil {
		t.Fatal(err)
	}
	return address
}
