package docker

import (
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-lb/berth/discovery"
)

// containerEntry is one running container that carries the group label.
type containerEntry struct {
	info     containerInfo
	draining bool
	// target is valid when skipReason is empty.
	target     discovery.Target
	skipReason string
	// leftOut says which bad labels the registered target is without.
	leftOut string
}

// hostState is this host's containers as known from listing and events. It is owned
// by the Run goroutine and not safe for concurrent use.
type hostState struct {
	cfg        targetConfig
	log        *slog.Logger
	containers map[string]*containerEntry
	// reported remembers what was logged per container, so a periodic resync does not
	// repeat the same warning every time.
	reported map[string]string
}

func newHostState(cfg targetConfig, log *slog.Logger) *hostState {
	return &hostState{cfg: cfg, log: log, containers: map[string]*containerEntry{}, reported: map[string]string{}}
}

// upsert records the result of an inspection. A container that is not running is removed.
// The draining mark survives a re-inspection of the same run, not a new run.
func (s *hostState) upsert(info containerInfo) {
	if !info.Running {
		s.remove(info.ID)
		return
	}
	built, ok := buildEntry(s.cfg, info)
	if !ok {
		s.remove(info.ID)
		return
	}
	entry := &built
	if old, known := s.containers[info.ID]; known && old.info.StartedAt == info.StartedAt {
		entry.draining = old.draining
	}
	s.containers[info.ID] = entry
	s.report(info)
}

// report logs a skip reason, the labels left out and the ignored labels once
// per container and reason.
func (s *hostState) report(info containerInfo) {
	entry := s.containers[info.ID]
	key := entry.skipReason
	if key == "" {
		key = "registered\x00" + entry.leftOut
	}
	if s.reported[info.ID] == key {
		return
	}
	s.reported[info.ID] = key
	if entry.skipReason != "" {
		s.log.Warn("docker: container not registered", "container", info.Name, "id", shortID(info.ID), "reason", entry.skipReason)
		return
	}
	if entry.leftOut != "" {
		s.log.Warn("docker: container registered without some of its labels", "container", info.Name, "id", shortID(info.ID), "reason", entry.leftOut)
	}
	if spec, err := ParseLabels(s.cfg.LabelPrefix, info.Labels); err == nil && len(spec.Ignored) > 0 {
		s.log.Debug("docker: labels not implemented by this version are ignored", "container", info.Name, "id", shortID(info.ID), "labels", spec.Ignored)
	}
}

// replaceAll makes the state exactly the given running containers, as after a full list.
func (s *hostState) replaceAll(infos []containerInfo) {
	listed := make(map[string]bool, len(infos))
	for _, info := range infos {
		listed[info.ID] = true
		s.upsert(info)
	}
	for id := range s.containers {
		if !listed[id] {
			s.remove(id)
		}
	}
}

func (s *hostState) remove(id string) {
	delete(s.containers, id)
	delete(s.reported, id)
}

// kill marks the container draining when the signal is one that stops it.
func (s *hostState) kill(id, signal string) {
	entry, ok := s.containers[id]
	if !ok || !stopsContainer(signal, entry.info.StopSignal) {
		return
	}
	entry.draining = true
}

// health records a health_status event's status.
func (s *hostState) health(id, status string) {
	entry, ok := s.containers[id]
	if !ok {
		return
	}
	entry.info.Health = dockerHealth(status)
	entry.target.DockerHealth = entry.info.Health
}

// known reports whether a container is tracked (registered or skipped).
func (s *hostState) known(id string) bool {
	_, ok := s.containers[id]
	return ok
}

// snapshot is the full state, targets and skipped containers sorted by ID.
func (s *hostState) snapshot() discovery.State {
	var state discovery.State
	for _, entry := range s.containers {
		if entry.skipReason != "" {
			state.Skipped = append(state.Skipped, discovery.Skipped{
				ContainerID:   entry.info.ID,
				ContainerName: entry.info.Name,
				Reason:        entry.skipReason,
			})
			continue
		}
		target := entry.target
		target.Draining = entry.draining
		state.Targets = append(state.Targets, target)
		if entry.leftOut != "" {
			state.LabelProblems = append(state.LabelProblems, discovery.LabelProblem{
				ContainerID:   entry.info.ID,
				ContainerName: entry.info.Name,
				Reason:        entry.leftOut,
			})
		}
	}
	sort.Slice(state.Targets, func(i, j int) bool { return state.Targets[i].ID < state.Targets[j].ID })
	sort.Slice(state.Skipped, func(i, j int) bool { return state.Skipped[i].ContainerID < state.Skipped[j].ContainerID })
	sort.Slice(state.LabelProblems, func(i, j int) bool {
		return state.LabelProblems[i].ContainerID < state.LabelProblems[j].ContainerID
	})
	return state
}

// drainSignals are the signals that stop a container whatever its StopSignal says.
var drainSignals = []int{2, 3, 9, 15} // INT, QUIT, KILL, TERM

// signalNumbers are the Linux signal numbers by name: containers run Linux whatever
// the agent's own platform is.
var signalNumbers = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
	"FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
	"TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
	"TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
	"IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}

const (
	sigRTMin = 34
	sigRTMax = 64
)

// signalNumber reads "15", "TERM", "SIGTERM", "sigterm" or "SIGRTMIN+3"; ok is false
// for anything else.
func signalNumber(signal string) (int, bool) {
	signal = strings.ToUpper(strings.TrimSpace(signal))
	if n, err := strconv.Atoi(signal); err == nil {
		if n <= 0 {
			return 0, false
		}
		return n, true
	}
	signal = strings.TrimPrefix(signal, "SIG")
	if n, ok := signalNumbers[signal]; ok {
		return n, true
	}
	for _, rt := range []struct {
		name string
		base int
		sign int
	}{{"RTMIN", sigRTMin, 1}, {"RTMAX", sigRTMax, -1}} {
		rest, found := strings.CutPrefix(signal, rt.name)
		if !found {
			continue
		}
		if rest == "" {
			return rt.base, true
		}
		offset, err := strconv.Atoi(rest)
		if err != nil || offset*rt.sign < 0 {
			return 0, false
		}
		return rt.base + offset, true
	}
	return 0, false
}

// stopsContainer reports whether a kill with signal ends the container: the usual
// stop signals, or the container's own StopSignal.
func stopsContainer(signal, stopSignal string) bool {
	n, ok := signalNumber(signal)
	if !ok {
		return false
	}
	for _, s := range drainSignals {
		if n == s {
			return true
		}
	}
	stop, ok := signalNumber(stopSignal)
	return ok && n == stop
}
