package fleettest

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/agent/config"
)

// reachTimeout bounds how long a balancer may take to route to replicas that
// run already: discovery on the own host, gossip for the others.
const reachTimeout = 20 * time.Second

// probe sends a short burst from inside host `from` to url and returns who
// answered; a failed load client counts as no answer.
func probe(f *Fleet, from int, url string) LoadResult {
	r, err := f.Load(from, LoadOptions{URL: url, Rate: 100, Duration: 300 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		return LoadResult{Answers: map[string]int{"load client error: " + err.Error(): 1}}
	}
	return r
}

// waitAnswers waits until every replica in want answers at url (requests sent
// from host `from`) and nothing outside allowed does, and returns how long
// that took.
func waitAnswers(t *testing.T, f *Fleet, from int, url string, want, allowed []string) time.Duration {
	t.Helper()
	started := time.Now()
	deadline := started.Add(reachTimeout)
	for {
		last := probe(f, from, url)
		if answersExactly(last, want, allowed) {
			return time.Since(started)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (from h%d) does not answer from each of %v and only from %v within %v: last answers %v, %d failed, first failures %v",
				url, from, want, allowed, reachTimeout, last.Answers, last.Failed, firstErrors(last))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answersExactly reports whether every name in want answered and no name
// outside allowed did.
func answersExactly(r LoadResult, want, allowed []string) bool {
	for _, name := range want {
		if r.Answers[name] == 0 {
			return false
		}
	}
	for name := range r.Answers {
		if !slices.Contains(allowed, name) {
			return false
		}
	}
	return true
}

func firstErrors(r LoadResult) []string {
	var errs []string
	for _, f := range r.Failures {
		if len(errs) == 3 {
			break
		}
		errs = append(errs, f.Error)
	}
	return errs
}

func TestFleet(t *testing.T) {
	started := time.Now()
	f := New(t, 3)
	h1, h2, h3 := f.Host(1), f.Host(2), f.Host(3)

	replicas := map[int][]string{}
	ids := map[string]string{}
	for _, host := range []int{1, 1, 2, 2} {
		id, name := f.RunApp(t, host)
		replicas[host] = append(replicas[host], name)
		ids[name] = id
	}
	all := append(slices.Clone(replicas[1]), replicas[2]...)
	t.Logf("fleet up with %v after %v", all, time.Since(started).Round(time.Millisecond))

	t.Run("each host's own balancer reaches its own containers", func(t *testing.T) {
		for _, h := range []*Host{h1, h2} {
			took := waitAnswers(t, f, 3, h.BalancerURL(), replicas[h.Index], all)
			t.Logf("%s's balancer answers from its replicas %v after %v", h.Name, replicas[h.Index], took.Round(time.Millisecond))
		}
	})

	t.Run("host 3's balancer reaches the apps on hosts 1 and 2", func(t *testing.T) {
		took := waitAnswers(t, f, 3, h3.BalancerURL(), all, all)
		t.Logf("h3's balancer answers from all of %v after %v", all, took.Round(time.Millisecond))
	})

	t.Run("docker stop on host 1 under load to host 3 fails no request", func(t *testing.T) {
		victim := replicas[1][0]
		load := f.StartLoad(3, LoadOptions{URL: h3.BalancerURL(), Rate: 200, Duration: 5 * time.Second, Timeout: 3 * time.Second})
		time.Sleep(time.Second) // a steady state before the stop, as in production
		stopStarted := time.Now()
		f.StopContainer(t, 1, ids[victim])
		t.Logf("docker stop %s took %v", victim, time.Since(stopStarted).Round(time.Millisecond))
		r, err := load.Wait()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load to h3 during the stop: %d ok, %d failed, answers %v", r.OK, r.Failed, r.Answers)
		if r.Failed != 0 {
			t.Fatalf("%d requests failed during docker stop of %s; first errors: %v", r.Failed, victim, firstErrors(r))
		}
		if r.Sent != 1000 || r.OK != r.Sent {
			t.Fatalf("%d of %d requests were answered; 1000 were due in 5 s at 200/s", r.OK, r.Sent)
		}
		if last := probe(f, 3, h3.BalancerURL()); last.Answers[victim] > 0 {
			t.Fatalf("the stopped replica %s still answers: %v", victim, last.Answers)
		}
	})

	t.Run("host 2 cut off under load to host 3 fails no request", func(t *testing.T) {
		load := f.StartLoad(3, LoadOptions{URL: h3.BalancerURL(), Rate: 200, Duration: 6 * time.Second, Timeout: 3 * time.Second})
		time.Sleep(time.Second)
		cut := time.Now()
		if err := f.LinkDown(2); err != nil {
			t.Fatal(err)
		}
		linkUp := func() {
			if err := f.LinkUp(2); err != nil {
				t.Error(err)
			}
		}
		t.Cleanup(linkUp)
		waitSuspectShown(t, f, 3, h2.Name)
		r, err := load.Wait()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load to h3 around the cut: %d ok, %d failed, answers %v", r.OK, r.Failed, r.Answers)

		// The cut is real: host 3 cannot reach host 2 at all.
		if direct := probe(f, 3, h2.BalancerURL()); direct.OK > 0 {
			t.Fatalf("h2's balancer still answers h3 after the cut: %v", direct.Answers)
		}
		if r.Failed != 0 {
			t.Fatalf("%d requests failed around the cut (the first sent %v after it); first errors: %v",
				r.Failed, time.Unix(0, r.FirstFailureSent).Sub(cut).Round(time.Millisecond), strings.Join(firstErrors(r), "; "))
		}
		if r.Sent != 1200 || r.OK != r.Sent {
			t.Fatalf("%d of %d requests were answered; 1200 were due in 6 s at 200/s", r.OK, r.Sent)
		}
		if r.Answers[replicas[2][0]]+r.Answers[replicas[2][1]] == 0 {
			t.Fatalf("host 2's replicas never answered before the cut: %v", r.Answers)
		}

		linkUp()
		back := time.Now()
		waitAnswers(t, f, 3, h3.BalancerURL(), replicas[2], all)
		t.Logf("host 2 back: h3's balancer answers from its replicas %v %v after the link came up",
			replicas[2], time.Since(back).Round(time.Millisecond))
	})

	// Host 1 runs h1-2 and a new h1-3 for the restarts; h1-1 stays stopped
	// (unless-stopped), so a daemon that brought it back would show.
	id, name := f.RunApp(t, 1)
	ids[name] = id
	running1 := []string{replicas[1][1], name}
	all = append(all, name)
	for _, tt := range []struct {
		name        string
		liveRestore bool
	}{
		{"dockerd of host 1 restarted with live-restore under load to host 3: its replicas keep serving", true},
		{"dockerd of host 1 restarted without live-restore under load to host 3: its replicas drain and come back", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := f.ConfigureDocker(1, DockerConfig{LiveRestore: tt.liveRestore}); err != nil {
				t.Fatal(err)
			}
			waitAnswers(t, f, 3, h3.BalancerURL(), append(slices.Clone(running1), replicas[2]...), all)
			before := waitTargetsMatchDocker(t, f)

			load := f.StartLoad(3, LoadOptions{URL: h3.BalancerURL(), Rate: 200, Duration: 10 * time.Second, Timeout: 3 * time.Second})
			time.Sleep(time.Second)
			stopping := time.Now()
			if err := f.StopDocker(1); err != nil {
				t.Fatal(err)
			}
			down := time.Now()
			t.Logf("h1's dockerd stopped in %v", down.Sub(stopping).Round(time.Millisecond))

			// While the daemon is down, every agent routes to what runs:
			// host 1's replicas with live-restore, none of them without.
			whileDown := maps.Clone(before)
			if !tt.liveRestore {
				maps.DeleteFunc(whileDown, func(id, _ string) bool { return strings.HasPrefix(id, h1.Name+"/") })
			}
			waitTargetsAre(t, f, whileDown, "while h1's dockerd is down")
			answers := probe(f, 3, h3.BalancerURL()).Answers
			for _, replica := range running1 {
				if serving := answers[replica] > 0; serving != tt.liveRestore {
					t.Errorf("while h1's dockerd is down, replica %s answers: %v, want %v (answers %v)", replica, serving, tt.liveRestore, answers)
				}
			}

			if err := f.StartDocker(1); err != nil {
				t.Fatal(err)
			}
			answered := time.Now()
			t.Logf("h1's dockerd down for %v", answered.Sub(down).Round(time.Millisecond))
			waitAnswers(t, f, 3, h3.BalancerURL(), append(slices.Clone(running1), replicas[2]...), all)
			after := waitTargetsMatchDocker(t, f)
			t.Logf("h1's replicas %v answer again and every agent's targets are docker ps's %v after the daemon answered", running1, time.Since(answered).Round(time.Millisecond))
			// The same containers, restarted in place without live-restore
			// (their published ports may change), untouched with it.
			if !slices.Equal(slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before))) || tt.liveRestore && !maps.Equal(after, before) {
				t.Errorf("targets after the restart %v, before %v", after, before)
			}

			r, err := load.Wait()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("load to h3 around the restart: %d ok, %d failed, answers %v", r.OK, r.Failed, r.Answers)
			if r.Failed != 0 {
				t.Fatalf("%d requests failed around the restart of h1's dockerd (the first sent %v after the stop began); first errors: %v",
					r.Failed, time.Unix(0, r.FirstFailureSent).Sub(stopping).Round(time.Millisecond), strings.Join(firstErrors(r), "; "))
			}
			if r.Sent != 2000 || r.OK != r.Sent {
				t.Fatalf("%d of %d requests were answered; 2000 were due in 10 s at 200/s", r.OK, r.Sent)
			}
		})
	}
	t.Logf("fleet test body took %v", time.Since(started).Round(time.Millisecond))
}

// waitSuspectShown waits until host `on`'s agent shows the node named node
// suspect, in its nodes and on each of its targets, while memberlist still
// has it alive: suspicion comes first, and it is what status must show.
func waitSuspectShown(t *testing.T, f *Fleet, on int, node string) {
	t.Helper()
	deadline := time.Now().Add(reachTimeout)
	for {
		status, err := f.Status(on)
		if err != nil {
			t.Fatal(err)
		}
		var member api.Node
		for _, n := range status.Nodes {
			if n.Node == node && (member.Name == "" || n.State == "alive") {
				member = n
			}
		}
		if member.State != "alive" {
			t.Fatalf("h%d's agent does not show %s suspect before memberlist calls it %q: %+v", on, node, member.State, status.Nodes)
		}
		targets, err := f.Targets(on)
		if err != nil {
			t.Fatal(err)
		}
		var suspect, of int
		for _, tg := range targets {
			if tg.Node == node {
				of++
				if tg.Suspect {
					suspect++
				}
			}
		}
		if member.Suspect && of > 0 && suspect == of {
			t.Logf("h%d's agent shows %s suspect, and its %d targets", on, node, of)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("h%d's agent does not show %s suspect within %v: node %+v, %d of its %d targets suspect", on, node, reachTimeout, member, suspect, of)
		}
		time.Sleep(pollInterval)
	}
}

// waitTargetsMatchDocker waits until every agent's targets are what docker ps
// says runs on the hosts, and returns them.
func waitTargetsMatchDocker(t *testing.T, f *Fleet) map[string]string {
	t.Helper()
	deadline := time.Now().Add(reachTimeout)
	for {
		want := map[string]string{}
		var err error
		for _, h := range f.Hosts {
			var running map[string]string
			if running, err = f.RunningTargets(h.Index); err != nil {
				break
			}
			maps.Copy(want, running)
		}
		if err == nil && targetsAre(f, want) == nil {
			return want
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = targetsAre(f, want)
			}
			t.Fatalf("the agents' targets are not docker ps's within %v: %v", reachTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// waitTargetsAre waits until every agent has exactly the targets want (ID to
// address), each healthy.
func waitTargetsAre(t *testing.T, f *Fleet, want map[string]string, when string) {
	t.Helper()
	deadline := time.Now().Add(reachTimeout)
	for {
		err := targetsAre(f, want)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, the agents' targets are not %v within %v: %v", when, want, reachTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// targetsAre tells how the agents' targets differ from want: one target too
// many (stale), listed twice (duplicate), missing, at another address or not
// healthy.
func targetsAre(f *Fleet, want map[string]string) error {
	var errs []error
	for _, h := range f.Hosts {
		targets, err := f.Targets(h.Index)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, tg := range targets {
			switch {
			case seen[tg.ID]:
				errs = append(errs, fmt.Errorf("%s lists %s twice", h.Name, tg.ID))
			case want[tg.ID] == "":
				errs = append(errs, fmt.Errorf("%s has a stale target %s (%s, %s)", h.Name, tg.ID, tg.Address, tg.State))
			case want[tg.ID] != tg.Address || tg.State != "healthy":
				errs = append(errs, fmt.Errorf("%s has %s at %s, %s; want %s, healthy", h.Name, tg.ID, tg.Address, tg.State, want[tg.ID]))
			}
			seen[tg.ID] = true
		}
		for id := range want {
			if !seen[id] {
				errs = append(errs, fmt.Errorf("%s misses %s", h.Name, id))
			}
		}
	}
	return errors.Join(errs...)
}

// TestAgentConfigIsValid loads the config the harness writes for each agent
// with the agent's own loader, so a harness mistake shows here and not as an
// agent that will not start.
func TestAgentConfigIsValid(t *testing.T) {
	f := &Fleet{RunID: "abc123", subnet: 7, dir: "/tmp/" + dirPrefix + "abc123"}
	for i := 1; i <= 3; i++ {
		f.Hosts = append(f.Hosts, &Host{Index: i, Name: fmt.Sprintf("h%d", i), IP: f.hostIP(i), dockerSock: fmt.Sprintf("%s/h%d/docker.sock", f.dir, i)})
	}
	tests := []struct {
		host      int
		advertise string
		join      []string
	}{
		{1, "10.213.7.11", []string{"10.213.7.12:7946", "10.213.7.13:7946"}},
		{2, "10.213.7.12", []string{"10.213.7.11:7946", "10.213.7.13:7946"}},
		{3, "10.213.7.13", []string{"10.213.7.11:7946", "10.213.7.12:7946"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("h%d", tt.host), func(t *testing.T) {
			h := f.Hosts[tt.host-1]
			file := filepath.Join(t.TempDir(), "berth.yaml")
			if err := os.WriteFile(file, []byte(f.agentConfig(h)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(file, nil)
			if err != nil {
				t.Fatalf("the agent refuses the harness's config: %v\n%s", err, f.agentConfig(h))
			}
			got := []string{cfg.Node.Name, cfg.Node.Advertise, cfg.Docker.Host, cfg.Cluster.Bind, cfg.Admin.Listen, cfg.Listeners[0].Address}
			want := []string{h.Name, tt.advertise, "unix://" + h.dockerSock, tt.advertise + ":7946", tt.advertise + ":9900", tt.advertise + ":8000"}
			if !slices.Equal(got, want) {
				t.Errorf("node name, advertise, docker host, cluster bind, admin, listener = %q, want %q", got, want)
			}
			if !slices.Equal(cfg.Cluster.Join, tt.join) {
				t.Errorf("cluster.join = %q, want %q", cfg.Cluster.Join, tt.join)
			}
		})
	}
}

// TestIsRunID: the stale sweep must only ever take namespaces and directories
// named like this harness's runs.
func TestIsRunID(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"0a30fe", true},
		{"abe9b7", true},
		{"0A30FE", false},
		{"demo", false},
		{"0a30f", false},
		{"0a30fe0", false},
		{"zz30fe", false},
	}
	for _, tt := range tests {
		if got := isRunID(tt.name); got != tt.want {
			t.Errorf("isRunID(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
