package gossip

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
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
	// Suspect is each receiver's own view of the owner, never sent.
	notCarried := map[string]bool{"ContainerID": true, "Suspect": true}
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

// FuzzDecodeMessage feeds arbitrary bytes to the decoder of every received
// message. It must never panic, and what it accepts must hold up: a sender
// named node@epoch, a state whose targets belong to its owner at ip:port
// addresses, within the bounds. Seeds: testdata/fuzz/FuzzDecodeMessage.
func FuzzDecodeMessage(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	w := toWire(discovery.Target{ID: "n1/abc/80", Groups: []string{"web"}, Address: "10.0.0.9:8080", Weight: 1})
	for _, m := range [][]byte{
		seal(key, kindDelta, "n1@1", delta{Owner: "n1", Epoch: 1, Seq: 1, Target: &w}),
		seal(key, kindDelta, "n1@1", delta{Owner: "n1", Epoch: 1, Seq: 2, Removed: "n1/abc/80"}),
		seal(key, kindFull, "n1@1", full{Owner: "n1", Epoch: 1, Seq: 2, Targets: []wireTarget{w}}),
		seal(key, kindInFlight, "n1@1", inFlightReport{Epoch: 1, Known: 2, Counts: map[string]int64{"n0/x/80": 3}}),
		seal(key, kindPull, "n1@1", empty{}),
		seal(key, kindGoodbye, "n1@1", empty{}),
	} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		e, err := decodeMessage(msg)
		if err != nil {
			var de *dropError
			if !errors.As(err, &de) {
				t.Fatalf("an error that is not a drop: %v", err)
			}
			return
		}
		if len(msg) > limit(e.kind) {
			t.Fatalf("accepted %d bytes of kind %q", len(msg), e.kind)
		}
		if _, _, ok := parseName(e.from); !ok {
			t.Fatalf("accepted sender %q", e.from)
		}
		var owner string
		var targets []wireTarget
		switch p := e.payload.(type) {
		case *delta:
			owner = p.Owner
			if p.Target != nil {
				targets = []wireTarget{*p.Target}
			}
		case *full:
			owner, targets = p.Owner, p.Targets
			if len(targets) > maxTargets {
				t.Fatalf("accepted %d targets", len(targets))
			}
		}
		for _, tg := range targets {
			if !strings.HasPrefix(tg.ID, owner+"/") {
				t.Fatalf("accepted target %q of owner %q", tg.ID, owner)
			}
			if _, err := netip.ParseAddrPort(tg.Address); err != nil {
				t.Fatalf("accepted address %q", tg.Address)
			}
			fromWire(owner, tg)
		}
	})
}

// TestCheckTargetRulePriority: a label rule without a priority (0) travels;
// one outside ALB's range is malformed.
func TestCheckTargetRulePriority(t *testing.T) {
	for _, tt := range []struct {
		priority int
		ok       bool
	}{{0, true}, {1, true}, {50000, true}, {-1, false}, {50001, false}} {
		tg := &wireTarget{ID: "n1/abc/8080", Groups: []string{"web"}, Address: "10.0.0.9:32768", Weight: 1,
			Rules: []wireRule{{Listener: "web", Priority: tt.priority, Paths: []string{"/app/*"}, Group: "web"}}}
		if err := checkTarget("n1", tg); (err == nil) != tt.ok {
			t.Errorf("priority %d: checkTarget = %v, want ok=%t", tt.priority, err, tt.ok)
		}
	}
}
