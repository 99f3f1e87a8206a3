package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"go.yaml.in/yaml/v3"

	"github.com/berth-lb/berth/agent/api"
)

// Defaults of berth rollout: the whole wait for health, and one admin request.
const (
	rolloutTimeout      = 5 * time.Minute
	adminRequestTimeout = 10 * time.Second
)

const rolloutUsage = "berth rollout [-f FILE]... [-p PROJECT] SERVICE [--scale N] [--timeout DURATION] [--max-surge N] [--admin ADDR] [--token-file FILE]"

// rollout is one `berth rollout`: start-first replacement of a compose
// service's containers, with berth draining the old ones fleet-wide before
// they are stopped.
type rollout struct {
	files    []string
	project  string
	service  string
	timeout  time.Duration
	surge    int
	scale    int      // --scale; 0: the compose file's, else as many as there are
	compose  []string // the compose command: docker compose, or docker-compose
	admin    *adminClient
	docker   *client.Client
	progress *progress
}

// runRollout implements `berth rollout`.
func runRollout(args []string, stdout, _ io.Writer) error {
	flags, options := newAdminFlagSet("rollout", rolloutUsage, stdout)
	files := flags.StringArrayP("file", "f", nil, "compose file(s), as for docker compose (default: compose's own lookup)")
	project := flags.StringP("project", "p", "", "compose project name (default: COMPOSE_PROJECT_NAME, else compose's rule: the project directory's name)")
	// --timeout bounds the rollout here, not one admin request.
	timeoutFlag := flags.Lookup("timeout")
	timeoutFlag.Usage = "how long the new containers may take to be healthy on every node before the rollout is rolled back"
	timeoutFlag.DefValue = rolloutTimeout.String()
	timeoutFlag.Value.Set(timeoutFlag.DefValue)
	surge := flags.Int("max-surge", 0, "how many new containers to start at a time (default: all of them)")
	scale := flags.Int("scale", 0, "how many containers the service runs after the rollout (default: the compose file's scale or deploy.replicas, else as many as it has, stopped ones counted)")
	service, rest := splitRef(args)
	if help, err := parseAdminFlags(flags, options, rest); help || err != nil {
		return err
	}
	if service == "" {
		return fmt.Errorf("name the compose service to roll out; usage: %s", rolloutUsage)
	}
	timeout := options.timeout
	options.timeout = adminRequestTimeout
	adminClient, err := newAdminClient(options)
	if err != nil {
		return err
	}
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	defer docker.Close()
	compose, err := composeCommand()
	if err != nil {
		return err
	}
	r := &rollout{files: *files, project: projectName(*project, *files), service: service, timeout: timeout, surge: *surge, scale: *scale,
		compose: compose, admin: adminClient, docker: docker, progress: newProgress(stdout)}
	return r.run(context.Background())
}

// composeCommand finds docker compose (the plugin) or docker-compose; env
// BERTH_COMPOSE chooses one, e.g. BERTH_COMPOSE=docker-compose.
func composeCommand() ([]string, error) {
	if env := os.Getenv("BERTH_COMPOSE"); env != "" {
		return strings.Fields(env), nil
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if path, err := exec.LookPath("docker-compose"); err == nil {
		return []string{path}, nil
	}
	return nil, fmt.Errorf("compose: neither `docker compose` nor `docker-compose` runs here; install one, or set BERTH_COMPOSE")
}

var notProjectChars = regexp.MustCompile(`[^a-z0-9_-]`)

// projectName follows compose: -p, else COMPOSE_PROJECT_NAME, else the name
// of the directory of the first compose file (or of the working directory).
func projectName(flag string, files []string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("COMPOSE_PROJECT_NAME"); env != "" {
		return env
	}
	dir, _ := os.Getwd()
	if len(files) > 0 {
		if abs, err := filepath.Abs(files[0]); err == nil {
			dir = filepath.Dir(abs)
		}
	}
	return notProjectChars.ReplaceAllString(strings.ToLower(filepath.Base(dir)), "")
}

func (r *rollout) run(ctx context.Context) error {
	def, err := r.definition(ctx)
	if err != nil {
		return err
	}
	all, err := r.containers(ctx)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return fmt.Errorf("no container of service %q in compose project %q; start it with docker compose up (or set -p)", r.service, r.project)
	}
	desired, err := r.desiredScale(def, len(all))
	if err != nil {
		return err
	}
	var old, stale []containerRef
	for _, c := range all {
		if c.running() {
			old = append(old, c)
		} else {
			stale = append(stale, c)
		}
	}
	// Compose counts a stopped or exited container towards the scale and
	// starts it again, with its old definition, instead of creating a new one.
	if len(stale) > 0 {
		r.progress.say("removing %d container(s) that do not run: %s", len(stale), describe(stale))
		r.remove(ctx, stale)
	}
	if agent, err := r.agentService(ctx, old); err != nil {
		return err
	} else if agent {
		if desired != 1 {
			return fmt.Errorf("the agent's service %s runs one agent per host, not %d: drop --scale (or the compose file's scale)", r.service, desired)
		}
		return r.rollAgent(ctx, old[0], def.hash)
	}
	surge := r.surge
	if surge <= 0 || surge > desired {
		surge = desired
	}
	batches := (desired + surge - 1) / surge
	r.progress.say("rolling out %s/%s: %d running container(s) replaced by %d new, %d at a time", r.project, r.service, len(old), desired, surge)
	var started []containerRef
	removed := 0
	for batch := range batches {
		fresh, err := r.startNew(ctx, min(surge, desired-len(started)), def.hash)
		if err != nil {
			return err
		}
		if err := r.waitHealthy(ctx, fresh); err != nil {
			r.progress.say("rolling back: removing the %d new container(s); the old ones keep serving", len(fresh))
			r.withdraw(ctx, fresh)
			return fmt.Errorf("rolled back: %w", err)
		}
		// The old containers leave in step with the batches, the last ones
		// with the last batch, whatever the two counts are.
		replace := old[removed : len(old)*(batch+1)/batches]
		if len(replace) > 0 {
			if err := r.drain(replace); err != nil {
				return err
			}
			r.remove(ctx, replace)
		}
		removed += len(replace)
		started = append(started, fresh...)
	}
	if err := r.verify(ctx, def.hash, desired); err != nil {
		return err
	}
	r.progress.done("done: %s/%s now runs %s", r.project, r.service, strings.Join(names(started), ", "))
	return nil
}

// containerRef is a container of the service.
type containerRef struct {
	id, name string
	state    string // Docker's: running, exited, created, paused, restarting, dead
	hash     string // compose's com.docker.compose.config-hash label
}

func (c containerRef) running() bool { return c.state == "running" }

func names(cs []containerRef) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// describe names containers with their state.
func describe(cs []containerRef) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name + " (" + c.state + ")"
	}
	return strings.Join(out, ", ")
}

// definition is the service as the compose file defines it with this
// environment.
type definition struct {
	// hash is the com.docker.compose.config-hash that compose gives a
	// container it creates from this definition.
	hash string
	// scale is the file's scale or deploy.replicas; nil when it sets neither.
	scale *int
}

// definition asks compose for the service's resolved definition: its scale
// from `config`, its hash from `config --hash`.
func (r *rollout) definition(ctx context.Context) (definition, error) {
	out, err := r.runCompose(ctx, "config")
	if err != nil {
		return definition{}, err
	}
	scale, err := parseComposeScale(out, r.service)
	if err != nil {
		return definition{}, err
	}
	out, err = r.runCompose(ctx, "config", "--hash="+r.service)
	if err != nil {
		return definition{}, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if fields := strings.Fields(line); len(fields) == 2 && fields[0] == r.service {
			return definition{hash: fields[1], scale: scale}, nil
		}
	}
	return definition{}, fmt.Errorf("compose: config --hash=%s printed no hash for %s: %q", r.service, r.service, out)
}

// parseComposeScale reads a service's scale (or deploy.replicas) from the
// output of `compose config`.
func parseComposeScale(config []byte, service string) (*int, error) {
	var file struct {
		Services map[string]struct {
			Scale  *int `yaml:"scale"`
			Deploy struct {
				Replicas *int `yaml:"replicas"`
			} `yaml:"deploy"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(config, &file); err != nil {
		return nil, fmt.Errorf("compose: read the output of compose config: %w", err)
	}
	s, ok := file.Services[service]
	if !ok {
		return nil, fmt.Errorf("compose: the compose file has no service %q (it has %s); name one of them", service, strings.Join(slices.Sorted(maps.Keys(file.Services)), ", "))
	}
	if s.Scale != nil {
		return s.Scale, nil
	}
	return s.Deploy.Replicas, nil
}

// desiredScale is how many containers the service runs after the rollout:
// --scale, else the compose file's, else as many as it has now, the ones
// that do not run counted (someone stopped one, or it exited: it is still
// meant to run).
func (r *rollout) desiredScale(def definition, containers int) (int, error) {
	switch {
	case r.scale < 0:
		return 0, fmt.Errorf("--scale %d: want a number of containers of at least 1", r.scale)
	case r.scale > 0:
		return r.scale, nil
	case def.scale == nil:
		return containers, nil
	case *def.scale < 1:
		return 0, fmt.Errorf("the compose file sets the scale of %s to %d: nothing to roll out; to end at another scale, pass --scale N", r.service, *def.scale)
	}
	return *def.scale, nil
}

// containers lists the service's containers in any state, oldest first;
// one-off containers (compose run) are not the service's replicas.
func (r *rollout) containers(ctx context.Context) ([]containerRef, error) {
	list, err := r.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+r.project),
		filters.Arg("label", "com.docker.compose.service="+r.service),
		filters.Arg("label", "com.docker.compose.oneoff=False"),
	)})
	if err != nil {
		return nil, fmt.Errorf("docker: list the containers of %s/%s: %w", r.project, r.service, err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Created < list[j].Created })
	out := make([]containerRef, len(list))
	for i, c := range list {
		out[i] = containerRef{id: c.ID, name: strings.TrimPrefix(c.Names[0], "/"), state: c.State, hash: c.Labels["com.docker.compose.config-hash"]}
	}
	return out, nil
}

// runCompose runs compose on the rollout's files and project and returns
// what it printed on stdout.
func (r *rollout) runCompose(ctx context.Context, args ...string) ([]byte, error) {
	full := slices.Clone(r.compose[1:])
	for _, f := range r.files {
		full = append(full, "-f", f)
	}
	full = append(append(full, "-p", r.project), args...)
	cmd := exec.CommandContext(ctx, r.compose[0], full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("compose: %s: %w\n%s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()+string(out)))
	}
	return out, nil
}

// startNew scales the service up by n with its current definition, keeping
// the running containers, and returns the new ones. Unless compose created
// exactly n new running containers of that definition (hash), and started
// nothing else, it removes what it started and says what went wrong.
func (r *rollout) startNew(ctx context.Context, n int, hash string) ([]containerRef, error) {
	before, err := r.containers(ctx)
	if err != nil {
		return nil, err
	}
	wasRunning := map[string]bool{}
	for _, c := range before {
		wasRunning[c.id] = c.running()
	}
	r.progress.say("starting %d new container(s)", n)
	if _, err := r.runCompose(ctx, "up", "-d", "--no-deps", "--no-recreate", "--scale", r.service+"="+strconv.Itoa(countRunning(before)+n), r.service); err != nil {
		return nil, err
	}
	after, err := r.containers(ctx)
	if err != nil {
		return nil, err
	}
	var fresh, restarted []containerRef
	var wrong []string
	for _, c := range after {
		running, known := wasRunning[c.id]
		switch {
		case !known:
			fresh = append(fresh, c)
			if c.hash != hash {
				wrong = append(wrong, otherDefinition(c, hash))
			} else if !c.running() {
				wrong = append(wrong, fmt.Sprintf("new container %s is %s", c.name, c.state))
			}
		case !running && c.running():
			restarted = append(restarted, c)
			wrong = append(wrong, fmt.Sprintf("compose started the old container %s again instead of a new one", c.name))
		}
	}
	if len(fresh) != n {
		wrong = append(wrong, fmt.Sprintf("compose created %d new container(s), not %d", len(fresh), n))
	}
	if len(wrong) > 0 {
		r.progress.say("rolling back: removing what compose started; the old containers keep serving")
		r.withdraw(ctx, append(fresh, restarted...))
		return nil, fmt.Errorf("rolled back: %s; is something else (another compose up, a restart policy) changing %s/%s? run berth rollout again when it is done", strings.Join(wrong, "; "), r.project, r.service)
	}
	return fresh, nil
}

func otherDefinition(c containerRef, hash string) string {
	return fmt.Sprintf("%s runs another definition than the compose file's (config hash %.12s, want %.12s)", c.name, c.hash, hash)
}

func countRunning(cs []containerRef) int {
	n := 0
	for _, c := range cs {
		if c.running() {
			n++
		}
	}
	return n
}

// verify checks the end state: desired running containers, all of the
// compose file's definition, and nothing else. A difference means something
// else changed the service during the rollout.
func (r *rollout) verify(ctx context.Context, hash string, desired int) error {
	all, err := r.containers(ctx)
	if err != nil {
		return err
	}
	var wrong []string
	for _, c := range all {
		switch {
		case !c.running():
			wrong = append(wrong, c.name+" is "+c.state)
		case c.hash != hash:
			wrong = append(wrong, otherDefinition(c, hash))
		}
	}
	if len(all) != desired {
		wrong = append(wrong, fmt.Sprintf("the service has %d container(s), want %d", len(all), desired))
	}
	if len(wrong) > 0 {
		return fmt.Errorf("the rollout ended but %s/%s is not as the compose file defines it: %s; something else changed it during the rollout: run berth rollout again", r.project, r.service, strings.Join(wrong, "; "))
	}
	return nil
}

// waitHealthy waits until every new container's targets are healthy and
// every node of the fleet has caught up with this node's state.
func (r *rollout) waitHealthy(ctx context.Context, fresh []containerRef) error {
	deadline := time.Now().Add(r.timeout)
	for {
		status, failing, err := r.health(ctx, fresh)
		if err != nil {
			return err
		}
		if status == "" {
			r.progress.say("new container(s) healthy on every node: %s", strings.Join(names(fresh), ", "))
			return nil
		}
		if failing {
			// Each failed its unhealthy threshold of checks in a row: waiting
			// longer only delays the roll back.
			return fmt.Errorf("every new container failed its health checks: %s", status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the new container(s) were not healthy within %s: %s", r.timeout, status)
		}
		r.progress.update("waiting for the new container(s) to be healthy: %s", status)
		time.Sleep(drainPoll)
	}
}

// health returns "" when the new containers serve everywhere, else what is
// still missing in words; failing is true when every new container is
// unhealthy.
func (r *rollout) health(ctx context.Context, fresh []containerRef) (status string, failing bool, err error) {
	for _, c := range fresh {
		info, err := r.docker.ContainerInspect(ctx, c.id)
		if err != nil {
			return "", false, fmt.Errorf("docker: inspect %s: %w", c.name, err)
		}
		if !info.State.Running {
			return "", false, fmt.Errorf("new container %s is %s (exit code %d); see docker logs %s", c.name, info.State.Status, info.State.ExitCode, c.name)
		}
	}
	targets, err := r.targets()
	if err != nil {
		return "", false, err
	}
	var waiting []string
	unhealthy := 0
	for _, c := range fresh {
		found := false
		for _, t := range targets {
			if t.Container != c.name {
				continue
			}
			found = true
			if t.State != "healthy" {
				waiting = append(waiting, c.name+" "+t.State+reasonSuffix(t.Reason))
			}
			if t.State == "unhealthy" {
				unhealthy++
			}
		}
		if !found {
			waiting = append(waiting, c.name+" not registered yet (does the service carry the berth.group label and publish its port?)")
		}
	}
	if len(waiting) > 0 {
		return strings.Join(waiting, "; "), unhealthy == len(fresh), nil
	}
	body, err := r.admin.get("/api/v1/nodes", nil)
	if err != nil {
		return "", false, err
	}
	var nodes []api.Node
	if err := r.admin.decode("/api/v1/nodes", body, &nodes); err != nil {
		return "", false, err
	}
	for _, n := range nodes {
		// Every node routes by this node's verdicts: wait until each has them.
		if !n.Self && n.State == "alive" && !n.HasOurs {
			waiting = append(waiting, "node "+n.Node+" has not caught up yet")
		}
	}
	return strings.Join(waiting, "; "), false, nil
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

// drain drains the old containers fleet-wide and waits until no node has a
// request in flight to them, or their deregistration delay ends.
func (r *rollout) drain(old []containerRef) error {
	r.progress.say("draining %s on every node", strings.Join(names(old), ", "))
	var ids []string
	for _, c := range old {
		body, err := r.admin.do(http.MethodPost, "/api/v1/drains", api.DrainRequest{Target: c.id})
		if err != nil {
			return fmt.Errorf("drain %s: %w", c.name, err)
		}
		var drains []api.Drain
		if err := r.admin.decode("/api/v1/drains", body, &drains); err != nil {
			return err
		}
		for _, d := range drains {
			ids = append(ids, d.Target)
		}
	}
	final, err := waitDrained(r.admin, ids, func(ds []api.Drain) {
		var inFlight int64
		for _, d := range ds {
			inFlight += d.InFlight
		}
		r.progress.update("draining: %d request(s) in flight across the fleet", inFlight)
	})
	if err != nil {
		return err
	}
	for _, d := range final {
		if d.Outcome == "delay_ended" {
			r.progress.say("the deregistration delay of %s ended with %d request(s) in flight", d.Target, d.InFlight)
		}
	}
	return nil
}

// withdraw takes back containers a roll back removes: those of them that
// serve or are about to (a container of another definition, one compose
// started again, a new one healthy before its batch failed) are drained
// fleet-wide first, then all are removed. The drain at each kill event is not
// enough here: an app that stops accepting at SIGTERM does so at the moment
// the agents learn of the kill, and a request picked in between may find
// every one of its tries on a container of this batch.
func (r *rollout) withdraw(ctx context.Context, cs []containerRef) {
	known, err := r.registered(cs)
	if err == nil && len(known) > 0 {
		err = r.drain(known)
	}
	if err != nil {
		r.progress.say("removing them undrained (each drains at its kill event): %v", err)
	}
	r.remove(ctx, cs)
}

// registerWait bounds how long withdraw waits for the agent to discover a
// container compose just started: discovery follows Docker's start event
// within milliseconds, and a container without a berth.group label never
// registers.
const registerWait = 2 * time.Second

// registered returns those of cs that have a target on this node, once every
// running one has or registerWait has passed.
func (r *rollout) registered(cs []containerRef) ([]containerRef, error) {
	deadline := time.Now().Add(registerWait)
	for {
		targets, err := r.targets()
		if err != nil {
			return nil, err
		}
		var known []containerRef
		missing := false
		for _, c := range cs {
			if slices.ContainsFunc(targets, func(t api.Target) bool { return t.Container == c.name }) {
				known = append(known, c)
			} else if c.running() {
				missing = true
			}
		}
		if !missing || time.Now().After(deadline) {
			return known, nil
		}
		time.Sleep(drainPoll)
	}
}

// targets returns this node's targets as its admin API lists them.
func (r *rollout) targets() ([]api.Target, error) {
	body, err := r.admin.get("/api/v1/targets", nil)
	if err != nil {
		return nil, err
	}
	var targets []api.Target
	if err := r.admin.decode("/api/v1/targets", body, &targets); err != nil {
		return nil, err
	}
	return targets, nil
}

// remove stops (with each container's own stop timeout) and removes
// containers, all at once: one slow to stop does not hold up the others.
func (r *rollout) remove(ctx context.Context, cs []containerRef) {
	r.progress.say("stopping and removing %s", strings.Join(names(cs), ", "))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			if err := r.docker.ContainerStop(ctx, c.id, container.StopOptions{}); err != nil {
				errs[i] = fmt.Errorf("docker: stop %s: %w", c.name, err)
			}
			if err := r.docker.ContainerRemove(ctx, c.id, container.RemoveOptions{Force: true}); err != nil {
				errs[i] = errors.Join(errs[i], fmt.Errorf("docker: remove %s: %w", c.name, err))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			r.progress.say("%v", err)
		}
	}
}

// progress shows what the rollout does: a line rewritten in place on a
// terminal, plain lines otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	last     string
	dirty    bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// say prints a step.
func (p *progress) say(format string, args ...any) {
	p.clear()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// update shows a changing state: in place on a terminal, once per change otherwise.
func (p *progress) update(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if line == p.last {
		return
	}
	p.last = line
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.dirty = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) done(format string, args ...any) { p.say(format, args...) }

func (p *progress) clear() {
	if p.dirty {
		fmt.Fprint(p.w, "\r\033[K")
		p.dirty = false
	}
	p.last = ""
}
