package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/berth-lb/berth/agent/api"
)

// Defaults of berth rollout: the whole wait for health, and one admin request.
const (
	rolloutTimeout      = 5 * time.Minute
	adminRequestTimeout = 10 * time.Second
)

const rolloutUsage = "berth rollout [-f FILE]... [-p PROJECT] SERVICE [--timeout DURATION] [--max-surge N] [--admin ADDR] [--token-file FILE]"

// rollout is one `berth rollout`: start-first replacement of a compose
// service's containers, with berth draining the old ones fleet-wide before
// they are stopped.
type rollout struct {
	files    []string
	project  string
	service  string
	timeout  time.Duration
	surge    int
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
	surge := flags.Int("max-surge", 0, "how many new containers to start at a time (default: as many as run now)")
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
	r := &rollout{files: *files, project: projectName(*project, *files), service: service, timeout: timeout, surge: *surge,
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
	old, err := r.containers(ctx)
	if err != nil {
		return err
	}
	if len(old) == 0 {
		return fmt.Errorf("no running container of service %q in compose project %q; start it with docker compose up (or set -p)", r.service, r.project)
	}
	surge := r.surge
	if surge <= 0 || surge > len(old) {
		surge = len(old)
	}
	r.progress.say("rolling out %s/%s: %d container(s), %d at a time", r.project, r.service, len(old), surge)
	var started []string
	for batch := 0; batch < len(old); batch += surge {
		replace := old[batch:min(batch+surge, len(old))]
		fresh, err := r.startNew(ctx, len(replace))
		if err != nil {
			return err
		}
		if err := r.waitHealthy(ctx, fresh); err != nil {
			r.progress.say("rolling back: removing the %d new container(s); the old ones keep serving", len(fresh))
			r.remove(ctx, fresh)
			return fmt.Errorf("rolled back: %w", err)
		}
		if err := r.drain(replace); err != nil {
			return err
		}
		r.remove(ctx, replace)
		started = append(started, names(fresh)...)
	}
	r.progress.done("done: %s/%s now runs %s", r.project, r.service, strings.Join(started, ", "))
	return nil
}

// containerRef is a container of the service.
type containerRef struct{ id, name string }

func names(cs []containerRef) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// containers lists the service's running containers, oldest first.
func (r *rollout) containers(ctx context.Context) ([]containerRef, error) {
	list, err := r.docker.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+r.project),
		filters.Arg("label", "com.docker.compose.service="+r.service),
		filters.Arg("status", "running"),
	)})
	if err != nil {
		return nil, fmt.Errorf("docker: list the containers of %s/%s: %w", r.project, r.service, err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Created < list[j].Created })
	out := make([]containerRef, len(list))
	for i, c := range list {
		out[i] = containerRef{id: c.ID, name: strings.TrimPrefix(c.Names[0], "/")}
	}
	return out, nil
}

// startNew scales the service up by n with its current definition, keeping
// the running containers, and returns the new ones.
func (r *rollout) startNew(ctx context.Context, n int) ([]containerRef, error) {
	before, err := r.containers(ctx)
	if err != nil {
		return nil, err
	}
	r.progress.say("starting %d new container(s)", n)
	args := slices.Clone(r.compose[1:])
	for _, f := range r.files {
		args = append(args, "-f", f)
	}
	args = append(args, "-p", r.project, "up", "-d", "--no-deps", "--no-recreate", "--scale", r.service+"="+strconv.Itoa(len(before)+n), r.service)
	cmd := exec.CommandContext(ctx, r.compose[0], args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("compose: %s: %w\n%s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	after, err := r.containers(ctx)
	if err != nil {
		return nil, err
	}
	var fresh []containerRef
	for _, c := range after {
		if !slices.Contains(before, c) {
			fresh = append(fresh, c)
		}
	}
	if len(fresh) != n {
		r.remove(ctx, fresh)
		return nil, fmt.Errorf("compose started %d container(s), not %d; nothing was changed", len(fresh), n)
	}
	return fresh, nil
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
	body, err := r.admin.get("/api/v1/targets", nil)
	if err != nil {
		return "", false, err
	}
	var targets []api.Target
	if err := r.admin.decode("/api/v1/targets", body, &targets); err != nil {
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
	body, err = r.admin.get("/api/v1/nodes", nil)
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

// remove stops (with each container's own stop timeout) and removes containers.
func (r *rollout) remove(ctx context.Context, cs []containerRef) {
	for _, c := range cs {
		r.progress.say("stopping and removing %s", c.name)
		if err := r.docker.ContainerStop(ctx, c.id, container.StopOptions{}); err != nil {
			r.progress.say("docker: stop %s: %v", c.name, err)
		}
		if err := r.docker.ContainerRemove(ctx, c.id, container.RemoveOptions{Force: true}); err != nil {
			r.progress.say("docker: remove %s: %v", c.name, err)
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
