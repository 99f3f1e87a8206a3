package main

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/loadtest"
)

// TestRolloutFromAnyState rolls one compose project out again and again, each
// time from another state the service can be in, under a steady load that
// must lose no request, with each compose flavour. After each step every
// container of the service runs the version wanted, and there are as many as
// the desired scale (docs/rollout.md).
func TestRolloutFromAnyState(t *testing.T) {
	for _, flavor := range composeFlavors {
		t.Run(flavor.name, func(t *testing.T) {
			p := newProject(t, flavor.command)
			drift, err := filepath.Abs(filepath.Join("testdata", "compose-drift.sh"))
			if err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				name    string
				prepare func(t *testing.T)
				env     []string
				// want is the version every container runs after the step;
				// wantErr, when set, is in the error of a rolled back rollout.
				want    string
				wantErr []string
				// wantOut, when set, is in the rollout's output.
				wantOut string
			}{
				{name: "from three running replicas", env: []string{"VERSION=v2"}, want: "v2"},
				{name: "with one replica stopped", prepare: func(t *testing.T) {
					if err := p.docker.ContainerStop(context.Background(), p.webContainers(t)[0].ID, container.StopOptions{}); err != nil {
						t.Fatal(err)
					}
				}, env: []string{"VERSION=v3"}, want: "v3"},
				{name: "with one replica exited on its own", prepare: func(t *testing.T) {
					id := p.webContainers(t)[0].ID
					resp, err := http.Post("http://127.0.0.1:"+dockertest.HostPort(t, p.docker, id, "8080/tcp")+"/exit", "text/plain", nil)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					dockertest.Eventually(t, 10*time.Second, func() bool {
						info, err := p.docker.ContainerInspect(context.Background(), id)
						return err == nil && info.State.Status == "exited"
					}, "the replica asked to exit still runs")
				}, env: []string{"VERSION=v4"}, want: "v4"},
				{name: "scaled down by hand, to the compose file's scale", prepare: func(t *testing.T) {
					p.writeComposeFile("    scale: 3\n")
					p.composeRun("up", "-d", "--no-deps", "--no-recreate", "--scale", "web=2", "web")
					if n := len(p.webContainers(t)); n != 2 {
						t.Fatalf("%d containers after the scale down, want 2", n)
					}
				}, env: []string{"VERSION=v5"}, want: "v5"},
				{name: "to a version that never turns healthy", env: []string{"VERSION=v6", "HEALTH_STATUS=503"},
					want: "v5", wantErr: []string{"rolled back", "failed its health checks"}},
				{name: "while something else changes the service", env: []string{"VERSION=v7", "BERTH_COMPOSE=sh " + drift + " " + strings.Join(flavor.command, " ")},
					// The containers of another definition served: they are
					// drained before they stop, not at their kill events.
					want: "v5", wantErr: []string{"rolled back", "runs another definition than the compose file's"}, wantOut: "\ndraining " + p.name},
			}
			for _, step := range steps {
				t.Run(step.name, func(t *testing.T) {
					load := loadtest.Start(p.url+"/", 200)
					time.Sleep(500 * time.Millisecond)
					if step.prepare != nil {
						step.prepare(t)
					}
					out, err := p.rollout(t, step.env...)
					res := load.Stop()
					t.Logf("rollout:\n%s", out)
					t.Logf("load: %d ok, %d failed, answers by version %v", res.OK, res.Failed, versions(res.Answers))
					if step.wantErr == nil && err != nil {
						t.Fatalf("rollout: %v", err)
					}
					for _, want := range step.wantErr {
						if err == nil || !strings.Contains(err.Error(), want) {
							t.Fatalf("rollout err = %v, want one saying %q", err, want)
						}
					}
					if step.wantOut != "" && !strings.Contains(out, step.wantOut) {
						t.Fatalf("the rollout's output does not say %q", step.wantOut)
					}
					var exit *exitError
					if errors.As(err, &exit) {
						t.Fatalf("a rolled back rollout must exit 1, not %d", exit.code)
					}
					if res.Failed != 0 {
						t.Fatalf("%d requests failed: %v\nbalancer errors:\n%s", res.Failed, res.Errors, p.balancerErrors())
					}
					p.wantEvery(t, step.want, 3)
				})
			}
		})
	}
}

// webContainers lists the web service's containers in any state, oldest first.
func (p *project) webContainers(t *testing.T) []container.Summary {
	t.Helper()
	list, err := p.docker.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+p.name), filters.Arg("label", "com.docker.compose.service=web"))})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list, func(a, b container.Summary) int { return int(a.Created - b.Created) })
	return list
}

// wantEvery checks that the service has n containers, each running version,
// and that berth answers with that version only.
func (p *project) wantEvery(t *testing.T, version string, n int) {
	t.Helper()
	var got []string
	for _, c := range p.webContainers(t) {
		info, err := p.docker.ContainerInspect(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		v := "no VERSION"
		for _, kv := range info.Config.Env {
			if strings.HasPrefix(kv, "VERSION=") {
				v = strings.TrimPrefix(kv, "VERSION=")
			}
		}
		got = append(got, strings.TrimPrefix(info.Name, "/")+" "+info.State.Status+" "+v)
		if !info.State.Running || v != version {
			t.Errorf("container %s is %s and runs %s, want every one running %s", info.Name, info.State.Status, v, version)
		}
	}
	if len(got) != n || t.Failed() {
		t.Fatalf("the service has %d container(s) (%s), want %d running %s", len(got), strings.Join(got, ", "), n, version)
	}
	if v := versions(p.answers(30)); v[version] != 30 {
		t.Fatalf("berth's answers by version: %v; want only %s", v, version)
	}
}
