package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The inputs are what docker-compose 1.29 and Compose v2.29 print for
// `config` of the same file (testdata/compose-config).
func TestParseComposeScale(t *testing.T) {
	for _, file := range []string{"docker-compose-v1.yaml", "compose-v2.yaml"} {
		config, err := os.ReadFile(filepath.Join("testdata", "compose-config", file))
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			service string
			want    int // 0: no scale
			wantErr string
		}{
			{service: "scaled", want: 3},
			{service: "replicated", want: 2},
			{service: "plain"},
			{service: "web", wantErr: `no service "web" (it has plain, replicated, scaled)`},
		}
		for _, tt := range tests {
			t.Run(file+"/"+tt.service, func(t *testing.T) {
				scale, err := parseComposeScale(config, tt.service)
				got := 0
				if scale != nil {
					got = *scale
				}
				wantScale(t, got, err, tt.want, tt.wantErr)
			})
		}
	}
}

func TestDesiredScale(t *testing.T) {
	three, zero := 3, 0
	tests := []struct {
		name       string
		flag       int
		file       *int
		containers int
		want       int
		wantErr    string
	}{
		{name: "the file's scale wins over the containers there are", file: &three, containers: 2, want: 3},
		{name: "without one, every container counts, stopped ones too", containers: 4, want: 4},
		{name: "--scale wins over the file", flag: 5, file: &three, containers: 2, want: 5},
		{name: "a file scale of 0 is refused", file: &zero, containers: 2, wantErr: "sets the scale of web to 0"},
		{name: "a negative --scale is refused", flag: -1, containers: 2, wantErr: "--scale -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &rollout{service: "web", scale: tt.flag}
			got, err := r.desiredScale(definition{scale: tt.file}, tt.containers)
			wantScale(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// wantScale checks a scale, or the error wanted when wantErr is set.
func wantScale(t *testing.T, got int, err error, want int, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil || got != want {
		t.Fatalf("scale = %d, %v; want %d", got, err, want)
	}
}

func TestRolloutArgumentsAroundTheService(t *testing.T) {
	tests := [][]string{
		{"web", "--scale", "3"},
		{"--scale", "3", "web"},
		{"-p", "shop", "--max-surge", "1", "web", "--timeout", "1m"},
	}
	for _, args := range tests {
		if ref, _ := splitRef(args); ref != "web" {
			t.Errorf("splitRef(%q) = %q, want web", args, ref)
		}
	}
}
