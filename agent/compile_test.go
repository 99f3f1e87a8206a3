package agent

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/balancer/health"
	"github.com/berth-lb/berth/discovery"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeDrains is a drainClock with fixed answers.
type fakeDrains struct {
	since    time.Time
	inflight map[string]int64
	health   map[string]health.Result
}

func (f fakeDrains) drainDeadline(_ string, delay time.Duration) time.Time { return f.since.Add(delay) }
func (f fakeDrains) inFlight(id string) int64                              { return f.inflight[id] }
func (f fakeDrains) checked(id string) (health.Result, bool)               { r, ok := f.health[id]; return r, ok }

// TestCompileGolden compiles testdata/compile/*.txtar: each archive holds
// "berth.yaml" (the config file), "state.json" (a discovery.State) and "want"
// (the balancer config, the groups, the targets, the health checks to run and
// the conflicts). Draining targets have 1 request in flight unless listed in
// the optional "drained" file; the optional "checked" file gives health check
// results, one "ID state reason" a line.
func TestCompileGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/compile/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := map[string][]byte{}
			for _, f := range ar.Files {
				parts[f.Name] = f.Data
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "berth.yaml")
			os.WriteFile(path, parts["berth.yaml"], 0o644)
			cfg, err := config.Load(path, nil)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			var state discovery.State
			if err := json.Unmarshal(parts["state.json"], &state); err != nil {
				t.Fatalf("state.json: %v", err)
			}
			clock := fakeDrains{since: time.Unix(1000, 0), inflight: map[string]int64{}}
			for _, tg := range state.Targets {
				clock.inflight[tg.ID] = 1
			}
			for _, id := range strings.Fields(string(parts["drained"])) {
				clock.inflight[id] = 0
			}
			clock.health = map[string]health.Result{}
			for _, line := range strings.Split(strings.TrimSpace(string(parts["checked"])), "\n") {
				if f := strings.Fields(line); len(f) >= 2 {
					clock.health[f[0]] = health.Result{State: f[1], Reason: strings.Join(f[2:], " ")}
				}
			}
			d := compile(cfg, state, nil, clock, time.Unix(1010, 0))
			got, _ := json.MarshalIndent(map[string]any{
				"balancer": d.balancer, "groups": d.groups, "targets": d.targets, "draining": d.draining, "conflicts": d.conflicts,
				"checks": d.checks, "fail_open": d.failOpen, "terminate": d.terminate,
			}, "", "  ")
			got = append(got, '\n')
			if *update {
				for i := range ar.Files {
					if ar.Files[i].Name == "want" {
						ar.Files[i].Data = got
					}
				}
				if parts["want"] == nil {
					ar.Files = append(ar.Files, txtar.File{Name: "want", Data: got})
				}
				os.WriteFile(file, txtar.Format(ar), 0o644)
				return
			}
			if string(got) != string(parts["want"]) {
				t.Errorf("compiled config differs from the golden file (run with -update to accept):\n%s", got)
			}
		})
	}
}

func TestTargetState(t *testing.T) {
	cases := []struct {
		target       discovery.Target
		state, cause string
	}{
		{discovery.Target{Weight: 1}, "healthy", ""},
		{discovery.Target{Weight: 1, DockerHealth: "healthy", Health: health.Healthy}, "healthy", ""},
		{discovery.Target{Weight: 1, DockerHealth: "starting"}, "initial", "Docker.HealthStarting"},
		{discovery.Target{Weight: 1, DockerHealth: "unhealthy", Health: health.Healthy}, "unhealthy", "Docker.Unhealthy"},
		{discovery.Target{Weight: 1, Health: health.Initial, HealthReason: health.ReasonInitial}, "initial", health.ReasonInitial},
		{discovery.Target{Weight: 1, Health: health.Unhealthy, HealthReason: health.ReasonTimeout}, "unhealthy", health.ReasonTimeout},
		{discovery.Target{Weight: 0}, "unused", "Target.WeightZero"},
		{discovery.Target{Weight: 1, Draining: true, DockerHealth: "unhealthy"}, "draining", "Target.DeregistrationInProgress"},
	}
	for _, c := range cases {
		if state, cause := targetState(c.target); state != c.state || cause != c.cause {
			t.Errorf("targetState(%+v) = %q, %q; want %q, %q", c.target, state, cause, c.state, c.cause)
		}
	}
}

// TestUnnumberedRulesOrderIsTheFleets: nodes that learn the fleet's label
// rules in other orders, or know only some of them for a moment, evaluate
// every two of them in the same order, and no two get one priority.
func TestUnnumberedRulesOrderIsTheFleets(t *testing.T) {
	all := []discovery.Rule{
		{Listener: "web", Paths: []string{"/app/*"}, Group: "app"},
		{Listener: "web", Paths: []string{"/app/v2/*"}, Group: "v2"},
		{Listener: "web", Paths: []string{"/same/*"}, Group: "b"},
		{Listener: "web", Paths: []string{"/same/*"}, Group: "a"},
		{Listener: "web", Paths: []string{"/app/*"}, Methods: []string{"GET"}, Group: "get"},
		{Listener: "web", Hosts: []string{"x.example.com"}, Group: "x"},
		{Listener: "web", Paths: []string{"/x"}, Headers: map[string][]string{"X-Env": {"beta"}}, Group: "beta"},
		{Listener: "web", Paths: []string{"/x"}, Queries: []discovery.QueryPattern{{Key: "v", Value: "2"}}, Group: "q"},
	}
	order := func(rules []discovery.Rule) []string {
		numbered, dropped := numberUnnumbered(rules)
		if len(dropped) > 0 {
			t.Fatalf("dropped %v", dropped)
		}
		var groups []string
		seen := map[int]bool{}
		for _, r := range numbered {
			if r.Priority <= 50000 || seen[r.Priority] {
				t.Fatalf("priority %d: want distinct priorities above 50000", r.Priority)
			}
			seen[r.Priority] = true
			groups = append(groups, r.Group)
		}
		return groups
	}
	want := order(all)
	for shift := 1; shift < len(all); shift++ {
		rotated := append(append([]discovery.Rule(nil), all[shift:]...), all[:shift]...)
		slices.Reverse(rotated[:len(rotated)/2])
		if got := order(rotated); !slices.Equal(got, want) {
			t.Fatalf("input order %d: %v, want %v", shift, got, want)
		}
		// A node that does not know rule shift yet keeps the others' order.
		without := slices.Delete(slices.Clone(all), shift, shift+1)
		wantWithout := slices.DeleteFunc(slices.Clone(want), func(g string) bool { return g == all[shift].Group })
		if got := order(without); !slices.Equal(got, wantWithout) {
			t.Fatalf("without %s: %v, want %v", all[shift].Group, got, wantWithout)
		}
	}
	if i, j := slices.Index(want, "v2"), slices.Index(want, "app"); i > j {
		t.Errorf("order %v: /app/v2/* must come before /app/*", want)
	}
	if i, j := slices.Index(want, "get"), slices.Index(want, "app"); i > j {
		t.Errorf("order %v: /app/* with a method must come before /app/* alone", want)
	}
}
