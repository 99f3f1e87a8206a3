package fleettest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What follows lets a person, not only a test, use a fleet: make demo-fleet
// (internal/demofleet) starts one and prints how to reach it.

// DockerHost is the DOCKER_HOST of the host's own dockerd.
func (h *Host) DockerHost() string { return "unix://" + h.dockerSock }

// Dir is the host's directory: its dockerd's data, its agent's config and the logs.
func (h *Host) Dir() string { return h.dir }

// LinkCommand is the command that LinkDown (up false) or LinkUp runs for host i.
func (f *Fleet) LinkCommand(i int, up bool) string {
	state := "down"
	if up {
		state = "up"
	}
	return fmt.Sprintf("ip -n %s link set %s %s", f.switchNS, f.vethName(i), state)
}

// rootAddress is the address ConnectRoot gives the machine on the switch.
func (f *Fleet) rootAddress() string { return fmt.Sprintf("10.213.%d.1", f.subnet) }

// ConnectRoot plugs the machine's own network namespace into the switch, so
// that its shell and browser reach every host's address, and returns the
// address it got. The veth goes with the switch's namespace when the fleet is
// removed.
func (f *Fleet) ConnectRoot() (string, error) {
	outside, inside := "b"+f.RunID+"r", "b"+f.RunID+"s"
	for _, args := range [][]string{
		{"link", "add", outside, "type", "veth", "peer", "name", inside, "netns", f.switchNS},
		{"-n", f.switchNS, "link", "set", inside, "master", "br0", "up"},
		{"addr", "add", f.rootAddress() + "/24", "dev", outside},
		{"link", "set", outside, "up"},
	} {
		if err := ip(args...); err != nil {
			return "", err
		}
	}
	return f.rootAddress(), nil
}

// Remove removes a fleet whose owner ended without its cleanup (a killed
// demo): it waits up to wait for the run's processes to end (they get SIGTERM
// when their owner dies, and dockerd stops its containers), kills what is
// left, removes namespaces, mounts, cgroups and the directory, and reports
// what could not be removed.
func Remove(runID string, wait time.Duration) error {
	if !isRunID(runID) {
		return fmt.Errorf("fleettest: %q is not a run ID", runID)
	}
	deadline := time.Now().Add(wait)
	for len(runProcesses(runID)) > 0 && time.Now().Before(deadline) {
		time.Sleep(pollInterval)
	}
	for _, pid := range runProcesses(runID) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	err := removeRun(runID)
	if leftovers := runLeftovers(runID); len(leftovers) > 0 {
		return fmt.Errorf("fleettest: run %s left behind:\n%s", runID, strings.Join(leftovers, "\n"))
	}
	return err
}

// runProcesses are the processes in the run's namespaces or whose command
// line names the run (dockerd, containerd and their shims, agents).
func runProcesses(runID string) []int {
	var pids []int
	namespaces, _ := runNamespaces(runID)
	for _, ns := range namespaces {
		pids = append(pids, namespacePIDs(ns)...)
	}
	for pid := range processesNaming(runID) {
		pids = append(pids, pid)
	}
	return pids
}

// RunsOwnedBy lists the runs that process pid started (by their owner.pid),
// so that a run whose owner died before it could say its run ID is found too.
func RunsOwnedBy(pid int) []string {
	var runs []string
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, ownerFile))
		if runID := strings.TrimPrefix(filepath.Base(d), dirPrefix); err == nil && isRunID(runID) && strings.TrimSpace(string(data)) == strconv.Itoa(pid) {
			runs = append(runs, runID)
		}
	}
	return runs
}
