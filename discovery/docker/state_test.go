package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-lb/berth/discovery"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/go-connections/nat"
)

// fakeDocker answers inspections from a map; a missing ID is "not found".
type fakeDocker struct {
	containers map[string]containerInfo
	err        error
}

func (f *fakeDocker) inspect(_ context.Context, id string) (containerInfo, error) {
	if f.err != nil {
		return containerInfo{}, f.err
	}
	info, ok := f.containers[id]
	if !ok {
		return containerInfo{}, fmt.Errorf("no such container %s: %w", id, cerrdefs.ErrNotFound)
	}
	return info, nil
}

// step is either a change of what Docker reports (set, fail) or an event.
type step struct {
	set   *containerInfo
	fail  error
	event *events.Message
}

func running(id, startedAt string, labels map[string]string, ports nat.PortMap) step {
	return step{set: &containerInfo{ID: id, Name: "c-" + id, StartedAt: startedAt, Running: true, Labels: labels, Ports: ports}}
}

func event(action, id string, attributes ...string) step {
	msg := events.Message{Type: events.ContainerEventType, Action: events.Action(action), Actor: events.Actor{ID: id, Attributes: map[string]string{}}}
	for i := 0; i+1 < len(attributes); i += 2 {
		msg.Actor.Attributes[attributes[i]] = attributes[i+1]
	}
	return step{event: &msg}
}

// render is a compact, comparable form of a state.
func render(state discovery.State) []string {
	var out []string
	for _, t := range state.Targets {
		out = append(out, fmt.Sprintf("%s %s draining=%t health=%q", t.ID, t.Address, t.Draining, t.DockerHealth))
	}
	for _, s := range state.Skipped {
		out = append(out, fmt.Sprintf("skipped %s: %s", s.ContainerID, s.Reason))
	}
	for _, p := range state.LabelProblems {
		out = append(out, fmt.Sprintf("left out %s: %s", p.ContainerID, p.Reason))
	}
	return out
}

// TestLabelsLeftOutAreReportedOnce: a container registered without a bad rule
// label is listed with the reason, and its warning is logged once however
// often resyncs see it, and again when a new run has another reason.
func TestLabelsLeftOutAreReportedOnce(t *testing.T) {
	var logged bytes.Buffer
	state := newHostState(targetConfig{Node: "n", LabelPrefix: "berth"}, slog.New(slog.NewTextHandler(&logged, nil)))
	ports := nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "40001"}}}
	badPath := map[string]string{"berth.group": "web", "berth.rule.path": "app"}
	for range 3 {
		state.replaceAll([]containerInfo{{ID: "aaa", Name: "shop", StartedAt: "t1", Running: true, Labels: badPath, Ports: ports}})
	}
	want := []string{
		`n/aaa/8080 127.0.0.1:40001 draining=false health=""`,
		`left out aaa: label berth.rule.path="app": want comma-separated paths starting with /, * and ? allowed, up to 128 characters each (e.g. /api/*,/health) (the rule is left out)`,
	}
	if got := render(state.snapshot()); !reflect.DeepEqual(got, want) {
		t.Fatalf("state:\n got %q\nwant %q", got, want)
	}
	const message = "container registered without some of its labels"
	if n := strings.Count(logged.String(), message); n != 1 {
		t.Fatalf("logged %d warnings after three resyncs, want 1:\n%s", n, logged.String())
	}
	badPriority := map[string]string{"berth.group": "web", "berth.rule.path": "/app/*", "berth.rule.priority": "0"}
	state.replaceAll([]containerInfo{{ID: "aaa", Name: "shop", StartedAt: "t2", Running: true, Labels: badPriority, Ports: ports}})
	if n := strings.Count(logged.String(), message); n != 2 || !strings.Contains(logged.String(), `berth.rule.priority=\"0\"`) {
		t.Fatalf("logged %d warnings, want a second one naming berth.rule.priority:\n%s", n, logged.String())
	}
}

func TestEventStateMachine(t *testing.T) {
	web := map[string]string{"berth.group": "web"}
	one := nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "40001"}}}
	two := nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "40002"}}, "9090/tcp": {{HostIP: "127.0.0.1", HostPort: "40003"}}}
	withStopSignal := func(s step, signal string) step {
		s.set.StopSignal = signal
		return s
	}
	const target = "n/aaa/8080 127.0.0.1:40001"
	tests := []struct {
		name    string
		steps   []step
		want    []string
		wantErr bool
	}{
		{
			name:  "start registers",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa")},
			want:  []string{target + ` draining=false health=""`},
		},
		{
			name:  "kill TERM drains, die removes",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "15")},
			want:  []string{target + ` draining=true health=""`},
		},
		{
			name:  "die removes",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "15"), event("die", "aaa")},
		},
		{
			name:  "stop removes",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("stop", "aaa")},
		},
		{
			name:  "destroy removes",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("destroy", "aaa")},
		},
		{
			name:  "kill INT by number drains",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "2")},
			want:  []string{target + ` draining=true health=""`},
		},
		{
			name:  "kill QUIT by name drains",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "SIGQUIT")},
			want:  []string{target + ` draining=true health=""`},
		},
		{
			name:  "kill KILL drains",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "KILL")},
			want:  []string{target + ` draining=true health=""`},
		},
		{
			name:  "kill HUP does nothing",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "1")},
			want:  []string{target + ` draining=false health=""`},
		},
		{
			name:  "kill USR1 does nothing",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "SIGUSR1")},
			want:  []string{target + ` draining=false health=""`},
		},
		{
			name:  "kill without signal does nothing",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa")},
			want:  []string{target + ` draining=false health=""`},
		},
		{
			name:  "kill with the configured StopSignal drains",
			steps: []step{withStopSignal(running("aaa", "t1", web, one), "SIGUSR2"), event("start", "aaa"), event("kill", "aaa", "signal", "12")},
			want:  []string{target + ` draining=true health=""`},
		},
		{
			name:  "kill with a realtime StopSignal drains",
			steps: []step{withStopSignal(running("aaa", "t1", web, one), "SIGRTMIN+3"), event("start", "aaa"), event("kill", "aaa", "signal", "37")},
			want:  []string{target + ` draining=true health=""`},
		},
		{
			name:  "another signal than the StopSignal does nothing",
			steps: []step{withStopSignal(running("aaa", "t1", web, one), "SIGUSR2"), event("start", "aaa"), event("kill", "aaa", "signal", "10")},
			want:  []string{target + ` draining=false health=""`},
		},
		{
			name: "restart ends registered, not draining",
			steps: []step{
				running("aaa", "t1", web, one), event("start", "aaa"),
				event("kill", "aaa", "signal", "15"), event("die", "aaa"), event("stop", "aaa"),
				running("aaa", "t2", web, one), event("start", "aaa"), event("restart", "aaa"),
			},
			want: []string{target + ` draining=false health=""`},
		},
		{
			name: "a new run clears draining even when die was missed",
			steps: []step{
				running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "15"),
				running("aaa", "t2", web, one), event("start", "aaa"),
			},
			want: []string{target + ` draining=false health=""`},
		},
		{
			name: "re-inspecting the same run keeps draining",
			steps: []step{
				running("aaa", "t1", web, one), event("start", "aaa"), event("kill", "aaa", "signal", "15"),
				event("start", "aaa"),
			},
			want: []string{target + ` draining=true health=""`},
		},
		{
			name:  "health_status with the status in the action",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("health_status: healthy", "aaa")},
			want:  []string{target + ` draining=false health="healthy"`},
		},
		{
			name: "health_status turns unhealthy",
			steps: []step{
				running("aaa", "t1", web, one), event("start", "aaa"),
				event("health_status: healthy", "aaa"), event("health_status: unhealthy", "aaa"),
			},
			want: []string{target + ` draining=false health="unhealthy"`},
		},
		{
			name: "bare health_status inspects",
			steps: []step{
				running("aaa", "t1", web, one), event("start", "aaa"),
				{set: &containerInfo{ID: "aaa", Name: "c-aaa", StartedAt: "t1", Running: true, Labels: web, Ports: one, Health: "starting"}},
				event("health_status", "aaa"),
			},
			want: []string{target + ` draining=false health="starting"`},
		},
		{
			name:  "pause and unpause change nothing",
			steps: []step{running("aaa", "t1", web, one), event("start", "aaa"), event("pause", "aaa"), event("unpause", "aaa")},
			want:  []string{target + ` draining=false health=""`},
		},
		{
			name:  "start of a container already gone",
			steps: []step{event("start", "aaa")},
		},
		{
			name: "start of a container that already exited",
			steps: []step{
				{set: &containerInfo{ID: "aaa", StartedAt: "t1", Labels: web, Ports: one}},
				event("start", "aaa"),
			},
		},
		{
			name: "start of a container without the group label",
			steps: []step{
				running("aaa", "t1", map[string]string{"other": "x"}, one),
				event("start", "aaa"),
			},
		},
		{
			name:  "several ports without berth.port are skipped",
			steps: []step{running("bbb", "t1", web, two), event("start", "bbb")},
			want:  []string{"skipped bbb: several published ports (8080/tcp, 9090/tcp) and no berth.port label: set berth.port to the container port to route to"},
		},
		{
			name:  "kill of an unknown container does nothing",
			steps: []step{event("kill", "zzz", "signal", "15")},
		},
		{
			name: "rename of a known container re-inspects",
			steps: []step{
				running("aaa", "t1", web, one), event("start", "aaa"),
				{set: &containerInfo{ID: "aaa", Name: "renamed", StartedAt: "t1", Running: true, Labels: web, Ports: one, Health: "healthy"}},
				event("rename", "aaa"),
			},
			want: []string{target + ` draining=false health="healthy"`},
		},
		{
			name:    "an inspect failure is an error and changes nothing",
			steps:   []step{{fail: errors.New("connection refused")}, event("start", "aaa")},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docker := &fakeDocker{containers: map[string]containerInfo{}}
			state := newHostState(targetConfig{Node: "n", Advertise: "10.0.0.5", LabelPrefix: "berth"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			var err error
			for _, s := range tt.steps {
				switch {
				case s.set != nil:
					docker.containers[s.set.ID] = *s.set
				case s.fail != nil:
					docker.err = s.fail
				case s.event != nil:
					if stepErr := applyEvent(context.Background(), state, *s.event, docker.inspect); stepErr != nil {
						err = stepErr
					}
				}
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error: %t", err, tt.wantErr)
			}
			if got := render(state.snapshot()); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("state:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestReplaceAll(t *testing.T) {
	web := map[string]string{"berth.group": "web"}
	port := func(hostPort string) nat.PortMap {
		return nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: hostPort}}}
	}
	state := newHostState(targetConfig{Node: "n", LabelPrefix: "berth"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	state.replaceAll([]containerInfo{
		{ID: "aaa", StartedAt: "t1", Running: true, Labels: web, Ports: port("40001")},
		{ID: "bbb", StartedAt: "t1", Running: true, Labels: web, Ports: port("40002")},
	})
	state.kill("aaa", "15")
	state.kill("bbb", "15")
	// aaa is still the same run and still stopping; bbb restarted; ccc is new; the
	// daemon no longer reports ddd, which was never seen anyway.
	state.replaceAll([]containerInfo{
		{ID: "aaa", StartedAt: "t1", Running: true, Labels: web, Ports: port("40001")},
		{ID: "bbb", StartedAt: "t2", Running: true, Labels: web, Ports: port("40002")},
		{ID: "ccc", StartedAt: "t1", Running: true, Labels: web, Ports: port("40003")},
	})
	want := []string{
		`n/aaa/8080 127.0.0.1:40001 draining=true health=""`,
		`n/bbb/8080 127.0.0.1:40002 draining=false health=""`,
		`n/ccc/8080 127.0.0.1:40003 draining=false health=""`,
	}
	if got := render(state.snapshot()); !reflect.DeepEqual(got, want) {
		t.Fatalf("after resync:\n got %q\nwant %q", got, want)
	}
	state.replaceAll([]containerInfo{{ID: "ccc", StartedAt: "t1", Running: true, Labels: web, Ports: port("40003")}})
	want = []string{`n/ccc/8080 127.0.0.1:40003 draining=false health=""`}
	if got := render(state.snapshot()); !reflect.DeepEqual(got, want) {
		t.Fatalf("after containers vanished:\n got %q\nwant %q", got, want)
	}
}

func TestSignalNumber(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"15", 15, true}, {"TERM", 15, true}, {"SIGTERM", 15, true}, {"sigint", 2, true},
		{" 9 ", 9, true}, {"SIGRTMIN", 34, true}, {"SIGRTMIN+3", 37, true}, {"RTMAX-2", 62, true},
		{"", 0, false}, {"0", 0, false}, {"-3", 0, false}, {"SIGNOPE", 0, false}, {"RTMIN-1", 0, false},
	}
	for _, tt := range tests {
		got, ok := signalNumber(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("signalNumber(%q) = %d, %t; want %d, %t", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
