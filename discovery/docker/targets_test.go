package docker

import (
	"reflect"
	"testing"
	"time"

	"github.com/berth-lb/berth/discovery"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

func TestSelectBinding(t *testing.T) {
	tests := []struct {
		name      string
		ports     nat.PortMap
		wantPort  int
		proto     string // "" means tcp
		advertise string
		want      binding
		reason    string
	}{
		{
			name:  "one port on loopback",
			ports: nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}}},
			want:  binding{ContainerPort: 8080, Address: "127.0.0.1:49153", LocalOnly: true},
		},
		{
			name:      "wildcard uses the advertise address",
			ports:     nat.PortMap{"8080/tcp": {{HostIP: "0.0.0.0", HostPort: "49153"}}},
			advertise: "10.0.0.5",
			want:      binding{ContainerPort: 8080, Address: "10.0.0.5:49153"},
		},
		{
			name:      "empty host IP is a wildcard",
			ports:     nat.PortMap{"8080/tcp": {{HostIP: "", HostPort: "49153"}}},
			advertise: "10.0.0.5",
			want:      binding{ContainerPort: 8080, Address: "10.0.0.5:49153"},
		},
		{
			name:      "wildcard with a loopback advertise is not local only: the publisher chose every interface",
			ports:     nat.PortMap{"8080/tcp": {{HostIP: "0.0.0.0", HostPort: "49153"}}},
			advertise: "127.0.0.1",
			want:      binding{ContainerPort: 8080, Address: "127.0.0.1:49153"},
		},
		{
			name:   "wildcard without advertise is skipped",
			ports:  nat.PortMap{"8080/tcp": {{HostIP: "0.0.0.0", HostPort: "49153"}}},
			reason: "container port 8080/tcp is published on all interfaces and no advertise address is set: set node.advertise, or publish the port on a specific address",
		},
		{
			name:      "specific address wins over advertise",
			ports:     nat.PortMap{"8080/tcp": {{HostIP: "192.168.1.7", HostPort: "49153"}}},
			advertise: "10.0.0.5",
			want:      binding{ContainerPort: 8080, Address: "192.168.1.7:49153"},
		},
		{
			name:      "IPv4 preferred over IPv6, whatever the order",
			ports:     nat.PortMap{"8080/tcp": {{HostIP: "::", HostPort: "49154"}, {HostIP: "0.0.0.0", HostPort: "49153"}}},
			advertise: "10.0.0.5",
			want:      binding{ContainerPort: 8080, Address: "10.0.0.5:49153"},
		},
		{
			name:  "IPv6 only, specific",
			ports: nat.PortMap{"8080/tcp": {{HostIP: "::1", HostPort: "49154"}}},
			want:  binding{ContainerPort: 8080, Address: "[::1]:49154", LocalOnly: true},
		},
		{
			name:      "reachable address preferred over loopback",
			ports:     nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}, {HostIP: "10.0.0.9", HostPort: "49155"}}},
			advertise: "10.0.0.5",
			want:      binding{ContainerPort: 8080, Address: "10.0.0.9:49155"},
		},
		{
			name: "exposed but unpublished ports do not count",
			ports: nat.PortMap{
				"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}},
				"9090/tcp": nil,
				"53/udp":   {{HostIP: "127.0.0.1", HostPort: "49160"}},
			},
			want: binding{ContainerPort: 8080, Address: "127.0.0.1:49153", LocalOnly: true},
		},
		{
			name: "several published ports without a port label",
			ports: nat.PortMap{
				"9090/tcp": {{HostIP: "127.0.0.1", HostPort: "49154"}},
				"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}},
			},
			reason: "several published ports (8080/tcp, 9090/tcp) and no berth.port label: set berth.port to the container port to route to",
		},
		{
			name: "several published ports with a port label",
			ports: nat.PortMap{
				"9090/tcp": {{HostIP: "127.0.0.1", HostPort: "49154"}},
				"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}},
			},
			wantPort: 9090,
			want:     binding{ContainerPort: 9090, Address: "127.0.0.1:49154", LocalOnly: true},
		},
		{
			name:     "port label names an unpublished port",
			ports:    nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}}, "9090/tcp": nil},
			wantPort: 9090,
			reason:   `berth.port=9090 but container port 9090/tcp is not published (published: 8080/tcp): publish it with a dynamic host port (docker run -p 9090, compose ports: ["9090"]) or set berth.port to a published port`,
		},
		{
			name:   "nothing published",
			ports:  nat.PortMap{"8080/tcp": nil},
			reason: `no published TCP port: publish the container port with a dynamic host port (docker run -p 8080, compose ports: ["8080"])`,
		},
		{
			name:   "only UDP published",
			ports:  nat.PortMap{"53/udp": {{HostIP: "127.0.0.1", HostPort: "49160"}}},
			reason: `no published TCP port: publish the container port with a dynamic host port (docker run -p 8080, compose ports: ["8080"])`,
		},
		{
			name:     "a UDP port asked for with the port label",
			ports:    nat.PortMap{"53/udp": {{HostIP: "127.0.0.1", HostPort: "49160"}}, "53/tcp": {{HostIP: "127.0.0.1", HostPort: "49161"}}},
			wantPort: 53,
			proto:    "udp",
			want:     binding{ContainerPort: 53, Address: "127.0.0.1:49160", LocalOnly: true},
		},
		{
			name:     "a UDP port asked for but not published",
			ports:    nat.PortMap{"53/tcp": {{HostIP: "127.0.0.1", HostPort: "49161"}}},
			wantPort: 53,
			proto:    "udp",
			reason:   `berth.port=53 but container port 53/udp is not published (published: none): publish it with a dynamic host port (docker run -p 53, compose ports: ["53"]) or set berth.port to a published port`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := selectBinding(tt.ports, tt.wantPort, tt.proto, tt.advertise, "berth")
			if reason != tt.reason {
				t.Errorf("reason:\n got %q\nwant %q", reason, tt.reason)
			}
			if got != tt.want {
				t.Errorf("binding: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBuildTarget(t *testing.T) {
	created := time.Date(2025, 3, 1, 12, 0, 0, 123, time.UTC)
	delay := 45 * time.Second
	inspect := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Name:    "/shop-web-1",
			Created: created.Format(time.RFC3339Nano),
			State: &container.State{
				Running:   true,
				StartedAt: "2025-03-01T12:00:01Z",
				Health:    &container.Health{Status: container.Starting},
			},
		},
		Config: &container.Config{Labels: map[string]string{
			"acme.group":                "web,api,web",
			"acme.weight":               "3",
			"acme.deregistration-delay": "45s",
			"acme.rule.path":            "/shop/*",
			"acme.rule.priority":        "7",
		}},
		NetworkSettings: &container.NetworkSettings{NetworkSettingsBase: container.NetworkSettingsBase{
			Ports: nat.PortMap{"8080/tcp": {{HostIP: "0.0.0.0", HostPort: "49153"}, {HostIP: "::", HostPort: "49153"}}},
		}},
	}
	cfg := targetConfig{Node: "host-a", Advertise: "10.0.0.5", LabelPrefix: "acme"}
	entry, ok := buildEntry(cfg, infoFromInspect(inspect))
	if !ok || entry.skipReason != "" || entry.leftOut != "" {
		t.Fatalf("buildEntry: ok=%t skip=%q left out=%q, want a target", ok, entry.skipReason, entry.leftOut)
	}
	target := entry.target
	want := discovery.Target{
		ID:            "host-a/0123456789ab/8080",
		Node:          "host-a",
		Groups:        []string{"api", "web"},
		Address:       "10.0.0.5:49153",
		Weight:        3,
		ContainerID:   inspect.ID,
		ContainerName: "shop-web-1",
		Created:       created,
		DockerHealth:  "starting",
		Settings:      discovery.GroupSettings{DeregistrationDelay: &delay},
		Rules:         []discovery.Rule{{Listener: "web", Priority: 7, Paths: []string{"/shop/*"}, Group: "web"}},
	}
	if !reflect.DeepEqual(target, want) {
		t.Errorf("target:\n got %+v\nwant %+v", target, want)
	}
}

func TestBuildEntrySkipsLeavesOutAndIgnores(t *testing.T) {
	ports := nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}}}
	tests := []struct {
		name    string
		labels  map[string]string
		ok      bool
		reason  string
		leftOut string
		rules   int
	}{
		{name: "no group label", labels: map[string]string{"com.example": "x"}},
		{name: "registered", labels: map[string]string{"berth.group": "web"}, ok: true},
		{
			name:   "bad labels",
			labels: map[string]string{"berth.group": "web", "berth.weight": "heavy"},
			ok:     true,
			reason: `label berth.weight="heavy": want an integer from 0 to 999 (0: no new traffic; default 1)`,
		},
		{
			name:   "a rule without a priority is kept",
			labels: map[string]string{"berth.group": "web", "berth.rule.path": "/app/*"},
			ok:     true,
			rules:  1,
		},
		{
			name:    "a bad rule label leaves out the rule, not the container",
			labels:  map[string]string{"berth.group": "web", "berth.rule.path": "app/*"},
			ok:      true,
			leftOut: `label berth.rule.path="app/*": want comma-separated paths starting with /, * and ? allowed, up to 128 characters each (e.g. /api/*,/health) (the rule is left out)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := containerInfo{ID: "abc", Running: true, Labels: tt.labels, Ports: ports}
			entry, ok := buildEntry(targetConfig{Node: "n", LabelPrefix: "berth"}, info)
			if ok != tt.ok || entry.skipReason != tt.reason || entry.leftOut != tt.leftOut || len(entry.target.Rules) != tt.rules {
				t.Errorf("got ok=%t skip=%q left out=%q rules=%d, want ok=%t skip=%q left out=%q rules=%d",
					ok, entry.skipReason, entry.leftOut, len(entry.target.Rules), tt.ok, tt.reason, tt.leftOut, tt.rules)
			}
			if registered := tt.ok && tt.reason == ""; registered != (entry.target.ID != "") {
				t.Errorf("target %q, want registered=%t", entry.target.ID, registered)
			}
		})
	}
}

func TestInfoFromInspectRunning(t *testing.T) {
	tests := []struct {
		name  string
		state *container.State
		want  bool
	}{
		{name: "running", state: &container.State{Status: "running", Running: true}, want: true},
		{name: "paused keeps its target", state: &container.State{Status: "paused", Running: true, Paused: true}, want: true},
		{name: "restarting", state: &container.State{Status: "restarting", Running: true, Restarting: true}},
		{name: "exited", state: &container.State{Status: "exited"}},
		{name: "dead", state: &container.State{Status: "dead", Dead: true}},
		{name: "no state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := infoFromInspect(container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: "x", State: tt.state}})
			if info.Running != tt.want {
				t.Errorf("Running = %t, want %t", info.Running, tt.want)
			}
		})
	}
}
