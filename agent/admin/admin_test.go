package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/agent/admin/admintest"
	"github.com/berth-lb/berth/agent/api"
	"github.com/prometheus/client_golang/prometheus"
)

type fakeSource = admintest.Source

// exampleAccess accepts the Host of httptest.NewRequest.
var exampleAccess = Access{AllowedHosts: []string{"example.com"}}

var started = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

func exampleSource() fakeSource {
	users := api.Group{Name: "users", Algorithm: "round_robin", DeregistrationDelay: "30s", Targets: 1, States: map[string]int{"healthy": 1}, Requests: 7,
		Latency: api.Latency{Bounds: []float64{0.001, 0.01}, Counts: []uint64{3, 6, 7}, Sum: 0.05}}
	web := api.Group{Name: "web", Algorithm: "least_outstanding_requests", DeregistrationDelay: "5m0s", Targets: 2, States: map[string]int{"healthy": 1, "draining": 1}, InFlight: 3, Requests: 42,
		Failures: 2, Latency: api.Latency{Bounds: []float64{0.001, 0.01}, Counts: []uint64{30, 40, 42}, Sum: 0.2}}
	return fakeSource{
		StatusDoc: api.Status{
			Node:    "host-a",
			Version: "v1.0.0",
			Started: started,
			Docker:  api.Docker{Connected: true, LastSync: started.Add(time.Minute)},
			Listeners: []api.Listener{
				{Name: "web", Protocol: "http", Address: ":80", Default: "fixed-response 404"},
			},
			Groups: []api.Group{web, users},
			Skipped: []api.Skipped{
				{Container: "bbbbbbbbbbbb", Name: "worker", Reason: "no published port"},
				{Container: "aaaaaaaaaaaa", Name: "api", Reason: "several published ports and no berth.port"},
			},
		},
		GroupList: []api.Group{web, users},
		TargetList: []api.Target{
			{ID: "host-a/222222222222/8080", Group: "web", Node: "host-a", Address: "10.0.0.5:32769", State: "draining", Source: "docker"},
			{ID: "host-a/111111111111/8080", Group: "web", Node: "host-a", Address: "10.0.0.5:32768", State: "healthy", Source: "docker"},
			{ID: "host-b/333333333333/9000", Group: "users", Node: "host-b", Address: "127.0.0.1:32770", LocalOnly: true, State: "healthy", Source: "gossip"},
		},
	}
}

func TestHandler(t *testing.T) {
	src := exampleSource()
	sortedTargets := []api.Target{src.TargetList[2], src.TargetList[1], src.TargetList[0]}
	sortedStatus := src.StatusDoc
	sortedStatus.Listeners = []api.Listener{{Name: "web", Protocol: "http", Address: ":80", Rules: []api.Rule{}, Default: "fixed-response 404"}}
	sortedStatus.Groups = []api.Group{src.GroupList[1], src.GroupList[0]}
	sortedStatus.Skipped = []api.Skipped{src.StatusDoc.Skipped[1], src.StatusDoc.Skipped[0]}
	sortedStatus.Nodes = []api.Node{}

	tests := []struct {
		name        string
		method      string
		target      string
		wantCode    int
		wantType    string
		wantAllow   string
		wantBody    string // exact body, when set
		wantJSON    any    // decoded and compared with the body, when set
		decodedType any    // pointer to a zero value of the document type
	}{
		{name: "healthz", method: "GET", target: "/healthz", wantCode: 200, wantType: "text/plain; charset=utf-8", wantBody: "ok\n"},
		// The recorder keeps the body that a real server drops for HEAD.
		{name: "healthz head", method: "HEAD", target: "/healthz", wantCode: 200, wantType: "text/plain; charset=utf-8", wantBody: "ok\n"},
		{name: "status", method: "GET", target: "/api/v1/status", wantCode: 200, wantType: "application/json", wantJSON: sortedStatus, decodedType: &api.Status{}},
		{name: "nodes without a cluster are an empty list", method: "GET", target: "/api/v1/nodes", wantCode: 200, wantType: "application/json", wantBody: "[]\n"},
		{name: "groups sorted by name", method: "GET", target: "/api/v1/groups", wantCode: 200, wantType: "application/json", wantJSON: []api.Group{src.GroupList[1], src.GroupList[0]}, decodedType: &[]api.Group{}},
		{name: "targets sorted by group then id", method: "GET", target: "/api/v1/targets", wantCode: 200, wantType: "application/json", wantJSON: sortedTargets, decodedType: &[]api.Target{}},
		{name: "targets of one group", method: "GET", target: "/api/v1/targets?group=web", wantCode: 200, wantType: "application/json", wantJSON: []api.Target{src.TargetList[1], src.TargetList[0]}, decodedType: &[]api.Target{}},
		{name: "empty group filter lists every target", method: "GET", target: "/api/v1/targets?group=", wantCode: 200, wantType: "application/json", wantJSON: sortedTargets, decodedType: &[]api.Target{}},
		{
			name: "unknown group", method: "GET", target: "/api/v1/targets?group=nope", wantCode: 404, wantType: "application/json",
			wantBody: "{\n  \"error\": \"admin: no target group \\\"nope\\\"; known groups: users, web\"\n}\n",
		},
		{
			name: "unknown path", method: "GET", target: "/api/v1/members", wantCode: 404, wantType: "application/json",
			wantBody: "{\n  \"error\": \"admin: no endpoint /api/v1/members; see docs/api.md for the list\"\n}\n",
		},
		{
			name: "trailing slash is another path", method: "GET", target: "/api/v1/status/", wantCode: 404, wantType: "application/json",
			wantBody: "{\n  \"error\": \"admin: no endpoint /api/v1/status/; see docs/api.md for the list\"\n}\n",
		},
		{
			name: "post on targets", method: "POST", target: "/api/v1/targets", wantCode: 405, wantType: "application/json", wantAllow: "GET, HEAD",
			wantBody: "{\n  \"error\": \"admin: method POST not allowed on /api/v1/targets; use GET\"\n}\n",
		},
		{
			name: "delete on metrics", method: "DELETE", target: "/metrics", wantCode: 405, wantType: "application/json", wantAllow: "GET, HEAD",
			wantBody: "{\n  \"error\": \"admin: method DELETE not allowed on /metrics; use GET\"\n}\n",
		},
	}
	handler := Handler(src, prometheus.NewRegistry(), exampleAccess)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tt.method, tt.target, nil)
			req.Header.Set("Content-Type", "application/json")
			handler.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Errorf("code = %d, want %d; body %q", rec.Code, tt.wantCode, rec.Body)
			}
			if got := rec.Header().Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantJSON == nil {
				if got := rec.Body.String(); got != tt.wantBody {
					t.Errorf("body = %q, want %q", got, tt.wantBody)
				}
				return
			}
			if !strings.HasPrefix(rec.Body.String(), "{\n  \"") && !strings.HasPrefix(rec.Body.String(), "[\n  {\n    \"") {
				t.Errorf("body is not indented JSON: %q", rec.Body)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), tt.decodedType); err != nil {
				t.Fatalf("decode %q: %v", rec.Body, err)
			}
			if got := reflect.ValueOf(tt.decodedType).Elem().Interface(); !reflect.DeepEqual(got, tt.wantJSON) {
				t.Errorf("document =\n%#v\nwant\n%#v", got, tt.wantJSON)
			}
		})
	}
}

// Scripts index the answers: a Source with nothing to report must still give arrays and
// objects, never null.
func TestHandlerEmptySourceAnswersEmptyLists(t *testing.T) {
	src := fakeSource{StatusDoc: api.Status{Node: "host-a", Listeners: []api.Listener{{Name: "web"}}}, GroupList: []api.Group{{Name: "web"}}}
	tests := []struct {
		target string
		want   []string
	}{
		{"/api/v1/status", []string{`"rules": []`, `"groups": []`, `"skipped": []`}},
		{"/api/v1/groups", []string{`"states": {}`}},
		{"/api/v1/targets", []string{"[]\n"}},
		{"/api/v1/targets?group=web", []string{"[]\n"}},
	}
	handler := Handler(src, prometheus.NewRegistry(), exampleAccess)
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest("GET", tt.target, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("code = %d, want 200; body %q", rec.Code, rec.Body)
			}
			for _, want := range tt.want {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("body %q does not contain %q", rec.Body, want)
				}
			}
		})
	}
}

func TestHandlerUnknownGroupWhenNoGroupIsKnown(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler(fakeSource{}, prometheus.NewRegistry(), exampleAccess).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/targets?group=web", nil))
	want := "{\n  \"error\": \"admin: no target group \\\"web\\\"; this agent knows no group yet\"\n}\n"
	if rec.Code != http.StatusNotFound || rec.Body.String() != want {
		t.Errorf("got %d %q, want 404 %q", rec.Code, rec.Body, want)
	}
}

// The Source may hand out slices it shares with other requests: sorting must not reorder them.
func TestHandlerDoesNotModifyTheSourceSlices(t *testing.T) {
	src := exampleSource()
	before := exampleSource()
	handler := Handler(src, prometheus.NewRegistry(), exampleAccess)
	for _, target := range []string{"/api/v1/status", "/api/v1/groups", "/api/v1/targets"} {
		handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	if !reflect.DeepEqual(src, before) {
		t.Errorf("source changed by the handler:\n%#v\nwant\n%#v", src, before)
	}
}

func TestHandlerMetrics(t *testing.T) {
	registry := prometheus.NewRegistry()
	requests := prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_test_requests_total", Help: "Requests seen by the test."})
	registry.MustRegister(requests)
	requests.Add(3)

	server := httptest.NewServer(Handler(fakeSource{}, registry, Access{}))
	defer server.Close()
	resp, err := http.Get(server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code = %d, want 200; body %q", resp.StatusCode, body)
	}
	if want := "berth_test_requests_total 3\n"; !strings.Contains(string(body), want) {
		t.Errorf("metrics %q do not contain %q", body, want)
	}
}

func TestHandlerUnencodableDocumentAnswers500(t *testing.T) {
	src := fakeSource{StatusDoc: api.Status{Started: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
	rec := httptest.NewRecorder()
	Handler(src, prometheus.NewRegistry(), exampleAccess).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/status", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("code = %d, want 500; body %q", rec.Code, rec.Body)
	}
	var answer api.Error
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
	if !strings.HasPrefix(answer.Error, "admin: encode answer: ") {
		t.Errorf("error = %q, want the admin: encode answer: prefix", answer.Error)
	}
}

func TestNodes(t *testing.T) {
	src := exampleSource()
	src.NodeList = []api.Node{
		{Name: "host-a@x1", Node: "host-a", Address: "10.0.0.5:7946", State: "alive", Seq: 3, Known: 3, ConfigHash: "abc", Self: true},
		{Name: "host-b@x2", Node: "host-b", Address: "10.0.0.6:7946", State: "dead", Seq: 1, Known: 1, ConfigHash: "def", ConfigDrift: true},
	}
	rec := httptest.NewRecorder()
	Handler(src, prometheus.NewRegistry(), exampleAccess).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/nodes", nil))
	var got []api.Node
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("code %d, err %v", rec.Code, err)
	}
	if !reflect.DeepEqual(got, src.NodeList) {
		t.Fatalf("nodes = %+v, want %+v", got, src.NodeList)
	}
}

func TestDrainEndpoints(t *testing.T) {
	var drained, undrained []string
	src := exampleSource()
	src.DrainList = []api.Drain{{Target: "host-a/111111111111/8080", Container: "web-1", InFlight: 2, Nodes: 3, Reported: 3}}
	src.Drained, src.Undrained = &drained, &undrained
	h := Handler(src, prometheus.NewRegistry(), exampleAccess)
	do := func(method, target, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("POST", "/api/v1/drains", `{"target":"web-1"}`); rec.Code != 202 || !strings.Contains(rec.Body.String(), `"in_flight": 2`) {
		t.Fatalf("POST: %d %s", rec.Code, rec.Body)
	}
	if rec := do("GET", "/api/v1/drains", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), "web-1") {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	if rec := do("DELETE", "/api/v1/drains/host-a/111111111111/8080", ""); rec.Code != 204 {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	if !reflect.DeepEqual(drained, []string{"web-1"}) || !reflect.DeepEqual(undrained, []string{"host-a/111111111111/8080"}) {
		t.Fatalf("drained %v, undrained %v", drained, undrained)
	}
	if rec := do("POST", "/api/v1/drains", `{"nope":1}`); rec.Code != 400 || !strings.Contains(rec.Body.String(), "the body must be JSON") {
		t.Fatalf("bad body: %d %s", rec.Code, rec.Body)
	}
	src.DrainErr = fmt.Errorf("agent: \"x\": %w: nothing matches", ErrNotFound)
	h = Handler(src, prometheus.NewRegistry(), exampleAccess)
	if rec := do("POST", "/api/v1/drains", `{"target":"x"}`); rec.Code != 404 || !strings.Contains(rec.Body.String(), "nothing matches") {
		t.Fatalf("unknown target: %d %s", rec.Code, rec.Body)
	}
}
