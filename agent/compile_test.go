package agent

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/discovery"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeDrains is a drainClock with fixed answers.
type fakeDrains struct {
	since    time.Time
	inflight map[string]int64
}

func (f fakeDrains) drainDeadline(_ string, delay time.Duration) time.Time { return f.since.Add(delay) }
func (f fakeDrains) inFlight(id string) int64                              { return f.inflight[id] }

// TestCompileGolden compiles testdata/compile/*.txtar: each archive holds
// "berth.yaml" (the config file), "state.json" (a discovery.State) and "want"
// (the balancer config, the groups and the conflicts). Draining targets have
// 1 request in flight unless listed in the optional "drained" file.
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
			d := compile(cfg, state, nil, clock, time.Unix(1010, 0))
			got, _ := json.MarshalIndent(map[string]any{
				"balancer": d.balancer, "groups": d.groups, "draining": d.draining, "conflicts": d.conflicts,
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
		target discovery.Target
		want   string
	}{
		{discovery.Target{Weight: 1}, "healthy"},
		{discovery.Target{Weight: 1, DockerHealth: "healthy"}, "healthy"},
		{discovery.Target{Weight: 1, DockerHealth: "starting"}, "initial"},
		{discovery.Target{Weight: 1, DockerHealth: "unhealthy"}, "unhealthy"},
		{discovery.Target{Weight: 0}, "unused"},
		{discovery.Target{Weight: 1, Draining: true, DockerHealth: "unhealthy"}, "draining"},
	}
	for _, c := range cases {
		if got := targetState(c.target); got != c.want {
			t.Errorf("targetState(%+v) = %q, want %q", c.target, got, c.want)
		}
	}
}
