package main

import (
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestIsAgent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		path   string
		args   []string
		labels map[string]string
		want   bool
	}{
		{"the label", "/app", nil, map[string]string{agentLabel: "true"}, true},
		{"the label set otherwise", "/app", nil, map[string]string{agentLabel: "false"}, false},
		{"berth agent", "/berth", []string{"agent", "--config", "/etc/berth/berth.yaml"}, nil, true},
		{"berth in a path", "/usr/local/bin/berth", []string{"agent"}, nil, true},
		{"berth docker-proxy", "/berth", []string{"docker-proxy"}, nil, false},
		{"berth without a command", "/berth", nil, nil, false},
		{"an app", "/app", []string{"agent"}, map[string]string{"berth.group": "web"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{Path: tc.path, Args: tc.args},
				Config: &container.Config{Labels: tc.labels}}
			if got := isAgent(info); got != tc.want {
				t.Fatalf("isAgent = %v, want %v", got, tc.want)
			}
		})
	}
}
