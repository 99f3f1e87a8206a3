package fleettest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/berth-lb/berth/agent/api"
)

// Targets returns host i's agent's targets (GET /api/v1/targets).
func (f *Fleet) Targets(i int) ([]api.Target, error) {
	var targets []api.Target
	return targets, f.askAgent(i, "targets", &targets)
}

// Status returns host i's agent's status (GET /api/v1/status), its view of
// the fleet's nodes included.
func (f *Fleet) Status(i int) (api.Status, error) {
	var status api.Status
	return status, f.askAgent(i, "status", &status)
}

// askAgent runs `berth <command> -o json` inside host i, where its agent's
// admin API is, and decodes what it prints into v.
func (f *Fleet) askAgent(i int, command string, v any) error {
	h := f.Host(i)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+h.Namespace, f.berth, command,
		"--admin", fmt.Sprintf("%s:%d", h.IP, AdminPort), "--token-file", h.TokenFile(), "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("fleettest: berth %s on %s: %w: %s", command, h.Name, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		return fmt.Errorf("fleettest: berth %s on %s printed %q: %w", command, h.Name, stdout.String(), err)
	}
	return nil
}

// RunningTargets returns the targets host i's agent must have for its own
// containers, as `docker ps` on the host tells them: target ID
// ("h<i>/<container-id-12>/8080") to address (the host's IP and the
// published port), for every running container with the group label.
func (f *Fleet) RunningTargets(i int) (map[string]string, error) {
	h := f.Host(i)
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	list, err := h.Docker.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "berth.group"))})
	if err != nil {
		return nil, fmt.Errorf("fleettest: docker ps on %s: %w", h.Name, err)
	}
	out := make(map[string]string, len(list))
	for _, c := range list {
		id := h.Name + "/" + c.ID[:12] + "/8080"
		for _, p := range c.Ports {
			if p.PrivatePort == 8080 && p.PublicPort != 0 {
				out[id] = h.IP + ":" + strconv.Itoa(int(p.PublicPort))
			}
		}
		if out[id] == "" {
			return nil, fmt.Errorf("fleettest: container %s on %s publishes no port 8080: %+v", c.ID[:12], h.Name, c.Ports)
		}
	}
	return out, nil
}
