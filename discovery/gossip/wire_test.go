package gossip

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/berth-lb/berth/discovery"
)

// TestWireCarriesEveryTargetField sends a target with every field set through
// the wire format: what a label declares on one host must reach every other.
// A field added to discovery.Target and not to the wire fails here.
func TestWireCarriesEveryTargetField(t *testing.T) {
	delay := 45 * time.Second
	in := discovery.Target{
		ID: "n1/abcdef123456/8080", Node: "n1", Groups: []string{"api", "web"}, Address: "10.0.0.9:32768",
		LocalOnly: true, Weight: 3, ContainerID: "abcdef1234567890", ContainerName: "shop-api-1",
		Created: time.Unix(1_700_000_000, 0), Draining: true, DockerHealth: "healthy",
		Health: "unhealthy", HealthReason: "Target.Timeout",
		Settings: discovery.GroupSettings{
			DeregistrationDelay: &delay, Algorithm: "least_outstanding_requests", SlowStart: 30 * time.Second,
			Health: discovery.HealthSettings{Protocol: "https", Path: "/healthz", Port: 9090, Interval: 5 * time.Second,
				Timeout: 2 * time.Second, Healthy: 3, Unhealthy: 4, Matcher: "200-299"},
			Stickiness: discovery.StickinessSettings{Type: "app_cookie", Cookie: "SESSION", Duration: time.Hour},
			Protocol:   "https", ProxyProtocol: "v2", ConnectionTermination: true,
		},
		Rules: []discovery.Rule{{
			Listener: "web", Priority: 7, Hosts: []string{"*.example.com"}, Paths: []string{"/api/*"},
			Methods: []string{"GET"}, Headers: map[string][]string{"X-Env": {"beta"}},
			Queries: []discovery.QueryPattern{{Key: "v", Value: "2"}}, SourceIPs: []string{"10.0.0.0/8"}, Group: "api",
		}},
	}
	// The container's full ID stays on its host: the short one is in the target ID.
	notCarried := map[string]bool{"ContainerID": true}
	assertAllSet(t, reflect.ValueOf(in), "Target", notCarried)

	raw, err := json.Marshal(toWire(in))
	if err != nil {
		t.Fatal(err)
	}
	var w wireTarget
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	out := fromWire("n1", w)
	want := in
	want.ContainerID = ""
	if !reflect.DeepEqual(out, want) {
		t.Errorf("the wire changed the target:\n got %+v\nwant %+v", out, want)
	}
}

// assertAllSet fails for every zero field of v (recursively through structs,
// slices and pointers) that is not in skip.
func assertAllSet(t *testing.T, v reflect.Value, path string, skip map[string]bool) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			t.Errorf("%s is not set in the sample", path)
			return
		}
		assertAllSet(t, v.Elem(), path, skip)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			if v.IsZero() {
				t.Errorf("%s is not set in the sample", path)
			}
			return
		}
		for i := range v.NumField() {
			name := v.Type().Field(i).Name
			if !skip[name] {
				assertAllSet(t, v.Field(i), path+"."+name, skip)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			t.Errorf("%s is not set in the sample", path)
			return
		}
		assertAllSet(t, v.Index(0), path+"[0]", skip)
	default:
		if v.IsZero() {
			t.Errorf("%s is not set in the sample", path)
		}
	}
}
