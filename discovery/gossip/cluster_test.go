package gossip

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/berth-lb/berth/discovery"
)

// fastDetection makes failure detection take about a second instead of 5-9 s,
// so tests of dead nodes stay short. Propagation settings stay berth's own.
func fastDetection(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipToTheDeadTime = time.Second
	c.TCPTimeout = time.Second
}

// partitionable wraps berth's network transport and drops everything
// sent to a blocked address, both packets and streams.
type partitionable struct {
	*transport
	mu      sync.Mutex
	blocked map[string]bool
}

func (p *partitionable) isBlocked(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked[addr]
}

func (p *partitionable) block(addrs []string, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range addrs {
		p.blocked[a] = on
	}
}

func (p *partitionable) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	if p.isBlocked(addr.Addr) {
		return time.Now(), nil // lost on the way
	}
	return p.transport.WriteToAddress(b, addr)
}

func (p *partitionable) WriteTo(b []byte, addr string) (time.Time, error) {
	return p.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (p *partitionable) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if p.isBlocked(addr.Addr) {
		return nil, fmt.Errorf("partitioned from %s", addr.Addr)
	}
	return p.transport.DialAddressTimeout(addr, timeout)
}

func (p *partitionable) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return p.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

type node struct {
	c         *Cluster
	transport *partitionable
	ip        string
}

type nodeOptions struct {
	// keys default to testKeys: a loopback fleet without a key routes no
	// other node's targets. keyless starts a node without any.
	keys    [][]byte
	keyless bool
	label   string
	log     io.Writer // default: discarded
	// inFlight is the node's in-flight count per target, for drain reports.
	inFlight func(string) int64
	// reserved stands for the agent's own sockets.
	reserved func(netip.AddrPort) bool
	// tune adjusts memberlist's settings; default fastDetection.
	// productionDetection keeps berth's own.
	tune func(*memberlist.Config)
}

// productionDetection keeps berth's memberlist settings (LAN failure detection).
func productionDetection(*memberlist.Config) {}

// syncBuffer collects a node's log for a test to read.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// testKeys is the fleet key of the test nodes.
var testKeys = [][]byte{[]byte("berth-test-key-0")}

// startNode starts a cluster node named name on 127.0.0.<ip> with a free port.
func startNode(t testing.TB, name string, ip int, join []string, o nodeOptions) *node {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.%d", ip)
	logger := slog.New(slog.NewTextHandler(cmp.Or(o.log, io.Discard), nil))
	nt, err := newTransport(addr+":0", logger)
	if err != nil {
		t.Fatal(err)
	}
	pt := &partitionable{transport: nt, blocked: map[string]bool{}}
	keys := o.keys
	if keys == nil && !o.keyless {
		keys = testKeys
	}
	tune := o.tune
	if tune == nil {
		tune = fastDetection
	}
	c, err := Start(Options{
		Node: name, Version: "v-" + name, Bind: addr + ":0", Join: join, Keys: keys, Label: o.label, Transport: pt, Tune: tune, InFlight: o.inFlight, Reserved: o.reserved,
		Logger: logger, RejoinGrace: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{c: c, transport: pt, ip: addr}
	t.Cleanup(func() { n.stop(false) })
	return n
}

var stopped sync.Map

// stop ends a node: gracefully (leave) or as a crash (no leave message).
func (n *node) stop(leave bool) {
	if _, done := stopped.LoadOrStore(n.c, true); done {
		return
	}
	if leave {
		n.c.Close(time.Second)
		return
	}
	close(n.c.done)
	n.c.wg.Wait()
	n.c.ml.Shutdown()
}

// cut cuts node i off from every other node, both ways, or heals the cut.
func cut(nodes []*node, i int, on bool) {
	for j, n := range nodes {
		if j != i {
			n.transport.block([]string{nodes[i].c.Addr()}, on)
			nodes[i].transport.block([]string{n.c.Addr()}, on)
		}
	}
}

// cluster starts size nodes, n0 on 127.0.0.10 and the others joining it.
func cluster(t testing.TB, size int) []*node {
	t.Helper()
	nodes := []*node{startNode(t, "n0", 10, nil, nodeOptions{})}
	for i := 1; i < size; i++ {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), 10+i, []string{nodes[0].c.Addr()}, nodeOptions{}))
	}
	// Generous: under -race with other packages' tests on 2 cores, fast
	// failure detection can suspect a starved node and forming takes longer.
	waitFormed(t, nodes, 30*time.Second)
	return nodes
}

// waitFormed waits until every node sees every other.
func waitFormed(t testing.TB, nodes []*node, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		seen := map[int]int{} // members seen (dead ones not counted) -> nodes seeing that many
		for _, n := range nodes {
			seen[n.c.ml.NumMembers()]++
		}
		if seen[len(nodes)] == len(nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster of %d did not form: nodes by members seen %v; members refused %v", len(nodes), seen, refused(nodes))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refused sums the nodes' refused members by reason.
func refused(nodes []*node) map[string]uint64 {
	sum := map[string]uint64{}
	for _, n := range nodes {
		for reason, k := range n.c.Stats().MembersRefused {
			sum[reason] += k
		}
	}
	return sum
}

func waitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// target is the n-th target of owner, whose host has the address ip: a
// container's port published on it.
func target(owner string, n int, ip string) discovery.Target {
	addr := net.JoinHostPort(ip, strconv.Itoa(1024+n%60000))
	return discovery.Target{ID: fmt.Sprintf("%s/%012d/8080", owner, n), Node: owner, Groups: []string{"web"}, Address: addr, Weight: 1, ContainerName: fmt.Sprintf("web-%d", n)}
}

// find returns the target with id as node n routes it.
func find(n *node, id string) (discovery.Target, bool) {
	for _, t := range n.c.Targets() {
		if t.ID == id {
			return t, true
		}
	}
	return discovery.Target{}, false
}

// Every node tells its version in its metadata; Members shows it.
func TestMembersTellTheirVersion(t *testing.T) {
	nodes := cluster(t, 2)
	for _, n := range nodes {
		for _, m := range n.c.Members() {
			if m.Version != "v-"+m.Node {
				t.Errorf("%s sees member %s with version %q, want %q", n.c.opts.Node, m.Name, m.Version, "v-"+m.Node)
			}
		}
	}
}

func TestTargetsAndDrainsReachEveryNode(t *testing.T) {
	for _, size := range []int{3, 10} {
		t.Run(fmt.Sprint(size, " nodes"), func(t *testing.T) {
			nodes := cluster(t, size)
			owner := nodes[size-1]
			tg := target("n"+fmt.Sprint(size-1), 1, owner.ip)
			owner.c.Publish([]discovery.Target{tg}, "hash-a")
			waitFor(t, 5*time.Second, func() bool {
				for _, n := range nodes[:size-1] {
					if got, ok := find(n, tg.ID); !ok || got.Address != tg.Address || got.Draining {
						return false
					}
				}
				return true
			}, "the new target did not reach every node")

			tg.Draining = true
			owner.c.Publish([]discovery.Target{tg}, "hash-a")
			waitFor(t, 5*time.Second, func() bool {
				for _, n := range nodes[:size-1] {
					if got, ok := find(n, tg.ID); !ok || !got.Draining {
						return false
					}
				}
				return true
			}, "the drain did not reach every node")

			owner.c.Publish(nil, "hash-a")
			waitFor(t, 5*time.Second, func() bool {
				for _, n := range nodes[:size-1] {
					if _, ok := find(n, tg.ID); ok {
						return false
					}
				}
				return true
			}, "the removal did not reach every node")
			for _, n := range nodes {
				if d := n.c.Stats().Dropped; len(d) > 0 && d[dropMalformed]+d[dropForeign]+d[dropOversized] > 0 {
					t.Errorf("%s dropped messages of a healthy cluster: %v", n.c.Name(), d)
				}
			}
		})
	}
}

func TestLocalOnlyTargetsStayHome(t *testing.T) {
	nodes := cluster(t, 2)
	local := target("n1", 1, "127.0.0.1")
	local.LocalOnly = true
	shared := target("n1", 2, nodes[1].ip)
	nodes[1].c.Publish([]discovery.Target{local, shared}, "")
	waitFor(t, 5*time.Second, func() bool { _, ok := find(nodes[0], shared.ID); return ok }, "the shared target did not arrive")
	if _, ok := find(nodes[0], local.ID); ok {
		t.Fatal("a local-only target is routed by another node")
	}
}

func TestDeadNodeTargetsLeaveEveryNode(t *testing.T) {
	nodes := cluster(t, 3)
	tg := target("n2", 1, nodes[2].ip)
	nodes[2].c.Publish([]discovery.Target{tg}, "")
	waitFor(t, 5*time.Second, func() bool { _, a := find(nodes[0], tg.ID); _, b := find(nodes[1], tg.ID); return a && b }, "the target did not arrive")
	killed := time.Now()
	nodes[2].stop(false) // no leave: a crash
	waitFor(t, 10*time.Second, func() bool { _, a := find(nodes[0], tg.ID); _, b := find(nodes[1], tg.ID); return !a && !b }, "a dead node's target is still routed")
	t.Logf("dead node's target gone from every survivor %v after the kill", time.Since(killed).Round(time.Millisecond))
}

func TestRestartedNodeRejoinsUnderTheSameName(t *testing.T) {
	nodes := cluster(t, 3)
	tg := target("n2", 1, nodes[2].ip)
	nodes[2].c.Publish([]discovery.Target{tg}, "")
	waitFor(t, 5*time.Second, func() bool { _, ok := find(nodes[0], tg.ID); return ok }, "the target did not arrive")

	// The agent restarts: leaves, and a new start of the same host comes back
	// with its still-running container and one new one.
	nodes[2].stop(true)
	if _, ok := find(nodes[0], tg.ID); !ok {
		t.Fatal("a gracefully restarting node's target left routing at once")
	}
	again := startNode(t, "n2", 12, []string{nodes[0].c.Addr()}, nodeOptions{})
	tg2 := target("n2", 2, again.ip)
	again.c.Publish([]discovery.Target{tg, tg2}, "")
	waitFor(t, 5*time.Second, func() bool {
		_, a := find(nodes[0], tg.ID)
		_, b := find(nodes[0], tg2.ID)
		_, c := find(nodes[1], tg2.ID)
		return a && b && c
	}, "the restarted node's targets did not arrive")
	// Past the rejoin grace the old start is gone; the new one still serves.
	time.Sleep(2500 * time.Millisecond)
	if _, ok := find(nodes[0], tg.ID); !ok {
		t.Fatal("the restarted node's target vanished with its old start")
	}
	for _, m := range nodes[0].c.Members() {
		if m.Node == "n2" && m.State == "alive" && m.Name != again.c.Name() {
			t.Fatalf("two live members for host n2: %+v", nodes[0].c.Members())
		}
	}
}

func TestPartitionHeals(t *testing.T) {
	nodes := cluster(t, 3)
	// Cut n2 off from n0 and n1 both ways.
	nodes[2].transport.block([]string{nodes[0].c.Addr(), nodes[1].c.Addr()}, true)
	nodes[0].transport.block([]string{nodes[2].c.Addr()}, true)
	nodes[1].transport.block([]string{nodes[2].c.Addr()}, true)
	tg := target("n2", 1, nodes[2].ip)
	nodes[2].c.Publish([]discovery.Target{tg}, "")
	tg0 := target("n0", 1, nodes[0].ip)
	nodes[0].c.Publish([]discovery.Target{tg0}, "")
	// Long enough for each side to declare the other dead: healing must not
	// depend on memberlist still probing.
	waitFor(t, 10*time.Second, func() bool {
		for _, m := range nodes[0].c.Members() {
			if m.Node == "n2" && m.State == "dead" {
				return true
			}
		}
		return false
	}, "n0 did not declare the partitioned n2 dead")
	if _, ok := find(nodes[0], tg.ID); ok {
		t.Fatal("a change crossed the partition")
	}
	nodes[2].transport.block([]string{nodes[0].c.Addr(), nodes[1].c.Addr()}, false)
	nodes[0].transport.block([]string{nodes[2].c.Addr()}, false)
	nodes[1].transport.block([]string{nodes[2].c.Addr()}, false)
	waitFor(t, 20*time.Second, func() bool {
		_, a := find(nodes[0], tg.ID)
		_, b := find(nodes[1], tg.ID)
		_, c := find(nodes[2], tg0.ID)
		return a && b && c
	}, "the state did not converge after the partition healed")
}

func TestUntrustedMessagesAreDropped(t *testing.T) {
	nodes := cluster(t, 2)
	n, sender := nodes[0], nodes[1].c
	epoch := sender.epoch
	good := toWire(target("n1", 1, nodes[1].ip))
	foreign := toWire(target("n0", 1, nodes[1].ip))
	badAddr := good
	badAddr.Address = "nowhere"
	sealed := func(kind byte, v any) []byte { return seal(sender.key, kind, sender.name, v) }
	cases := []struct {
		name   string
		msg    []byte
		reason string
	}{
		{"not json", sealBody(sender.key, kindDelta, sender.name, []byte("{{{")), dropMalformed},
		{"unknown kind", sealed('Z', empty{}), dropMalformed},
		{"empty", nil, dropMalformed},
		{"unsigned", append([]byte{kindDelta, 0}, `{"o":"n1"}`...), dropMalformed},
		{"no target and no removal", sealed(kindDelta, delta{Owner: "n1", Epoch: epoch, Seq: 1}), dropMalformed},
		{"bad owner name", sealed(kindDelta, delta{Owner: "n1 <script>", Epoch: epoch, Seq: 1, Target: &good}), dropMalformed},
		{"a target of another owner", sealed(kindDelta, delta{Owner: "n1", Epoch: epoch, Seq: 1, Target: &foreign}), dropForeign},
		{"bad address", sealed(kindDelta, delta{Owner: "n1", Epoch: epoch, Seq: 1, Target: &badAddr}), dropMalformed},
		{"oversized full", append([]byte{kindFull}, make([]byte, maxFullBytes+1)...), dropOversized},
	}
	for _, c := range cases {
		before := n.c.Stats().Dropped[c.reason]
		delegate{n.c}.NotifyMsg(c.msg)
		waitFor(t, 2*time.Second, func() bool { return n.c.Stats().Dropped[c.reason] == before+1 }, "%s: not counted as %s", c.name, c.reason)
	}
	// A stale copy: n1's real state is newer than a delta of an old seq.
	sender.Publish([]discovery.Target{target("n1", 1, nodes[1].ip)}, "")
	sender.Publish([]discovery.Target{target("n1", 2, nodes[1].ip)}, "")
	waitFor(t, 5*time.Second, func() bool { _, ok := find(n, target("n1", 2, nodes[1].ip).ID); return ok }, "the real target did not arrive")
	stale := good
	stale.Address = nodes[1].ip + ":666"
	before := n.c.Stats().Dropped[dropStale]
	delegate{n.c}.NotifyMsg(sealed(kindFull, full{Owner: "n1", Epoch: epoch, Seq: 1, Targets: []wireTarget{stale}}))
	waitFor(t, 2*time.Second, func() bool { return n.c.Stats().Dropped[dropStale] == before+1 }, "a stale full state was not counted")
	if len(n.c.Targets()) != 1 {
		t.Fatalf("untrusted messages changed the targets: %+v", n.c.Targets())
	}
}

func TestWrongKeyCannotJoin(t *testing.T) {
	key := []byte("0123456789abcdef")
	other := []byte("fedcba9876543210")
	a := startNode(t, "a", 20, nil, nodeOptions{keys: [][]byte{key}})
	var bLog, cLog syncBuffer
	b := startNode(t, "b", 21, []string{a.c.Addr()}, nodeOptions{keys: [][]byte{other}, log: &bLog})
	c := startNode(t, "c", 22, []string{a.c.Addr()}, nodeOptions{keyless: true, log: &cLog})
	d := startNode(t, "d", 23, []string{a.c.Addr()}, nodeOptions{keys: [][]byte{key, other}}) // mid-rotation: encrypts with key, decrypts both
	waitFor(t, 10*time.Second, func() bool { return a.c.ml.NumMembers() == 2 && d.c.ml.NumMembers() == 2 }, "the node with the right key (as second key) did not join")
	time.Sleep(time.Second)
	if b.c.ml.NumMembers() != 1 || c.c.ml.NumMembers() != 1 {
		t.Fatalf("a node with another key or none joined: b sees %d, c sees %d", b.c.ml.NumMembers(), c.c.ml.NumMembers())
	}
	if a.c.ml.NumMembers() != 2 {
		t.Fatalf("a sees %d members, want itself and d", a.c.ml.NumMembers())
	}
	for name, log := range map[string]*syncBuffer{"b (another key)": &bLog, "c (no key)": &cLog} {
		if !strings.Contains(log.String(), "cannot join the cluster yet") || !strings.Contains(log.String(), "cluster.secret-key-file") {
			t.Errorf("%s does not say in its log why it cannot join:\n%s", name, log.String())
		}
	}
}

func TestDrainProgressCountsEveryNode(t *testing.T) {
	var mu sync.Mutex
	counts := map[string]int64{"n0": 3, "n1": 2}
	inFlightOf := func(node string) func(string) int64 {
		return func(string) int64 { mu.Lock(); defer mu.Unlock(); return counts[node] }
	}
	n0 := startNode(t, "n0", 40, nil, nodeOptions{inFlight: inFlightOf("n0")})
	n1 := startNode(t, "n1", 41, []string{n0.c.Addr()}, nodeOptions{inFlight: inFlightOf("n1")})
	owner := startNode(t, "n2", 42, []string{n0.c.Addr()}, nodeOptions{})
	waitFormed(t, []*node{n0, n1, owner}, 10*time.Second)
	tg := target("n2", 1, owner.ip)
	owner.c.Publish([]discovery.Target{tg}, "")
	waitFor(t, 5*time.Second, func() bool { _, a := find(n0, tg.ID); _, b := find(n1, tg.ID); return a && b }, "the target did not arrive")
	if n, reported, _ := owner.c.DrainProgress(tg.ID); n != 0 || reported != 0 {
		t.Fatalf("a serving target has drain reports: %d in flight from %d members", n, reported)
	}
	tg.Draining = true
	owner.c.Publish([]discovery.Target{tg}, "")
	waitFor(t, 5*time.Second, func() bool {
		for _, m := range owner.c.Members() {
			if !m.Self && !m.HasOurs {
				return false
			}
		}
		return true
	}, "the owner does not learn that every member has its newest state")
	waitFor(t, 5*time.Second, func() bool {
		n, reported, members := owner.c.DrainProgress(tg.ID)
		return n == 5 && reported == 2 && members == 2
	}, "the owner does not see both members' in-flight counts")
	mu.Lock()
	counts["n0"], counts["n1"] = 0, 0
	mu.Unlock()
	waitFor(t, 5*time.Second, func() bool {
		n, reported, members := owner.c.DrainProgress(tg.ID)
		return n == 0 && reported == 2 && members == 2
	}, "the drain does not end when every member reports zero")
}

// A node cut off is suspect on every other node within about 2 s, with
// berth's production settings (memberlist declares it dead only seconds
// later): its targets stay, marked Suspect, and so does its member in
// Members and Stats. When it answers again they are not suspect any more.
func TestCutOffNodeIsSuspectOnEveryNode(t *testing.T) {
	var nodes []*node
	for i := range 3 {
		var join []string
		if i > 0 {
			join = []string{nodes[0].c.Addr()}
		}
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), 10+i, join, nodeOptions{tune: productionDetection}))
	}
	waitFormed(t, nodes, 30*time.Second)
	tg := target("n2", 1, nodes[2].ip)
	nodes[2].c.Publish([]discovery.Target{tg}, "")
	suspectOn := func(want bool) func() bool {
		return func() bool {
			for _, n := range nodes[:2] {
				if got, ok := find(n, tg.ID); !ok || got.Suspect != want {
					return false
				}
				if memberSuspect(n, "n2") != want || (n.c.Stats().Suspect == 1) != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 10*time.Second, suspectOn(false), "n2's target did not reach the others")
	start := time.Now()
	cut(nodes, 2, true)
	waitFor(t, 3*time.Second, suspectOn(true), "n2's target is not suspect on every node 3 s after the cut")
	t.Logf("suspect on every node %v after the cut", time.Since(start).Round(time.Millisecond))
	cut(nodes, 2, false)
	waitFor(t, 3*time.Second, suspectOn(false), "n2's target is still suspect 3 s after the cut healed")
	for _, n := range nodes[:2] {
		if got := n.c.Stats().Suspicions; got == 0 {
			t.Errorf("%s counts no suspicion after the cut", n.c.Name())
		}
	}
}

// memberSuspect reports whether n's Members shows the live member of owner
// as suspect.
func memberSuspect(n *node, owner string) bool {
	for _, m := range n.c.Members() {
		if m.Node == owner && m.State == "alive" {
			return m.Suspect
		}
	}
	return false
}
