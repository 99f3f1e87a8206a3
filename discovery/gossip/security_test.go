package gossip

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/berth-lb/berth/discovery"
)

// stranger is a plain memberlist node, as the ~50-line program of an attacker
// would run: no berth code, whatever key (or none) it was given.
func stranger(t *testing.T, ip string, key []byte, meta []byte) *memberlist.Memberlist {
	t.Helper()
	conf := memberlist.DefaultLANConfig()
	conf.Name = "evil@1"
	conf.BindAddr, conf.BindPort, conf.AdvertisePort = ip, 0, 0
	conf.Logger = log.New(io.Discard, "", 0)
	conf.Delegate = strangerMeta(meta)
	if key != nil {
		ring, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		conf.Keyring = ring
	}
	ml, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return ml
}

type strangerMeta []byte

func (m strangerMeta) NodeMeta(int) []byte               { return m }
func (strangerMeta) NotifyMsg([]byte)                    {}
func (strangerMeta) GetBroadcasts(int, int) [][]byte     { return nil }
func (strangerMeta) LocalState(bool) []byte              { return nil }
func (strangerMeta) MergeRemoteState(buf []byte, _ bool) {}

// attack is what the stranger sends: the state of an owner "evil" with a
// target at the victim's own port, in today's and in the old unsigned format.
func attack(victimPort int) [][]byte {
	tg := wireTarget{ID: "evil/1/80", Groups: []string{"pwn"}, Address: "127.0.0.1:" + strconv.Itoa(victimPort), Weight: 1,
		Rules: []wireRule{{Listener: "web", Priority: 1, Paths: []string{"/api/v1/*"}, Group: "pwn"}}}
	f := full{Owner: "evil", Epoch: 1, Seq: 1, Targets: []wireTarget{tg}}
	_, key, _ := ed25519.GenerateKey(nil)
	return [][]byte{seal(key, kindFull, "evil@1", f), append([]byte{kindFull}, `{"o":"evil","e":1,"s":1,"tg":[]}`...)}
}

func TestStrangersCannotJoinAKeyedFleet(t *testing.T) {
	key := []byte("0123456789abcdef")
	a := startNode(t, "a", 50, nil, nodeOptions{keys: [][]byte{key}})
	_, aPort, _ := strings.Cut(a.c.Addr(), ":")
	port, _ := strconv.Atoi(aPort)
	tests := []struct {
		name string
		key  []byte
		ip   string
	}{
		{"no key", nil, "127.0.0.51"},
		{"a wrong key", []byte("fedcba9876543210"), "127.0.0.52"},
		// The right key, but not a berth agent: no signing key in its meta.
		{"the key, no berth meta", key, "127.0.0.53"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stranger(t, tt.ip, tt.key, nil)
			s.Join([]string{a.c.Addr()})
			for _, m := range s.Members() {
				if m.Name == a.c.Name() {
					for _, msg := range attack(port) {
						s.SendReliable(m, msg)
					}
				}
			}
			time.Sleep(500 * time.Millisecond) // let a process what it got
			if n := a.c.ml.NumMembers(); n != 1 {
				t.Fatalf("the stranger is a member: a sees %d members", n)
			}
			if got := a.c.Targets(); len(got) > 0 {
				t.Fatalf("the stranger's targets are routed: %+v", got)
			}
		})
	}
	if a.c.Stats().MembersRefused[refuseNotBerth] == 0 {
		t.Error("the keyed stranger without berth meta was not counted as refused")
	}
}

// TestLoopbackStrangerCannotRouteAnywhere: on a loopback fleet without a key
// any local process may join, and none of its targets is routed, not even at
// its own address (a private service of the host). With the key, a member's
// targets must still be at its own address, never special addresses, never
// this node's own ports.
func TestLoopbackStrangerCannotRouteAnywhere(t *testing.T) {
	for _, keyless := range []bool{true, false} {
		t.Run(map[bool]string{true: "keyless", false: "keyed"}[keyless], func(t *testing.T) {
			testLoopbackStranger(t, keyless)
		})
	}
}

func testLoopbackStranger(t *testing.T, keyless bool) {
	const adminPort = 9900 // stands for this node's admin API, seen through any loopback address
	n0 := startNode(t, "n0", 60, nil, nodeOptions{keyless: keyless, reserved: func(ap netip.AddrPort) bool {
		return ap.Port() == adminPort && ap.Addr().IsLoopback()
	}})
	// A plain memberlist stranger is not even a member.
	plain := stranger(t, "127.0.0.62", nil, nil)
	plain.Join([]string{n0.c.Addr()})

	evil := startNode(t, "evil", 61, []string{n0.c.Addr()}, nodeOptions{keyless: keyless})
	waitFormed(t, []*node{n0, evil}, 10*time.Second)
	at := func(n int, addr string) discovery.Target {
		tg := target("evil", n, evil.ip)
		tg.Address = addr
		tg.Rules = []discovery.Rule{{Listener: "web", Priority: n, Paths: []string{"/api/v1/*"}, Group: "web"}}
		return tg
	}
	own := at(1, evil.ip+":8080")
	refused := map[string]string{
		"127.0.0.1:9900":          refuseNotOwnerAddress, // another loopback address: the admin API
		"127.0.0.60:8080":         refuseNotOwnerAddress, // this node's address
		"10.0.0.9:80":             refuseNotOwnerAddress, // some other host
		evil.ip + ":9900":         refuseOwnPort,         // this node's port through the stranger's own address
		"169.254.169.254:80":      refuseSpecialAddress,  // a cloud's metadata service
		"[fe80::1]:80":            refuseSpecialAddress,
		"0.0.0.0:80":              refuseSpecialAddress,
		"224.0.0.1:80":            refuseSpecialAddress,
		"[::ffff:127.0.0.1]:9900": refuseNotOwnerAddress,
	}
	published := []discovery.Target{own}
	want := map[string]uint64{}
	for addr, reason := range refused {
		published = append(published, at(len(published)+1, addr))
		want[reason]++
	}
	routed := 1
	if keyless {
		want[refuseKeylessLoopback], routed = 1, 0
	}
	evil.c.Publish(published, "")
	waitFor(t, 5*time.Second, func() bool {
		got := n0.c.Stats().TargetsRefused
		for reason, n := range want {
			if got[reason] < n {
				return false
			}
		}
		_, ok := find(n0, own.ID)
		return ok == (routed == 1)
	}, "the stranger's targets were not all refused, or its own address not routed with the key")
	time.Sleep(300 * time.Millisecond) // deltas and the pull's full state both arrive
	if got := n0.c.Targets(); len(got) != routed {
		t.Fatalf("n0 routes %d targets, want %d: %+v", len(got), routed, got)
	}
	if n0.c.ml.NumMembers() != 2 {
		t.Errorf("n0 has %d members: the plain memberlist stranger got in", n0.c.ml.NumMembers())
	}
}

// TestMemberCannotForgeAnotherOwner: a member holding the fleet key writes
// its own state only, and cannot take another node's name.
func TestMemberCannotForgeAnotherOwner(t *testing.T) {
	key := [][]byte{[]byte("0123456789abcdef")}
	n0 := startNode(t, "n0", 70, nil, nodeOptions{keys: key})
	n1 := startNode(t, "n1", 71, []string{n0.c.Addr()}, nodeOptions{keys: key})
	evil := startNode(t, "evil", 72, []string{n0.c.Addr()}, nodeOptions{keys: key})
	waitFormed(t, []*node{n0, n1, evil}, 10*time.Second)
	real := target("n1", 1, n1.ip)
	n1.c.Publish([]discovery.Target{real}, "")
	waitFor(t, 5*time.Second, func() bool { _, ok := find(n0, real.ID); return ok }, "n1's target did not arrive")

	huge := int64(1) << 62
	forged := toWire(target("n1", 1, evil.ip))
	other := toWire(target("n1", 2, evil.ip))
	_, wrongKey, _ := ed25519.GenerateKey(nil)
	cases := []struct {
		name, reason string
		msg          []byte
	}{
		{"a change of n1 signed by evil", dropNotOwner, seal(evil.c.key, kindDelta, evil.c.name, delta{Owner: "n1", Epoch: huge, Seq: 1, Target: &forged})},
		{"n1's state signed by evil", dropNotOwner, seal(evil.c.key, kindFull, evil.c.name, full{Owner: "n1", Epoch: huge, Seq: 1, Targets: []wireTarget{forged, other}})},
		{"n1's own epoch, signed by evil", dropNotOwner, seal(evil.c.key, kindFull, evil.c.name, full{Owner: "n1", Epoch: n1.c.epoch, Seq: 9, Targets: []wireTarget{forged}})},
		{"sent in n1's name with another key", dropBadSignature, seal(wrongKey, kindFull, n1.c.name, full{Owner: "n1", Epoch: n1.c.epoch, Seq: 9, Targets: []wireTarget{forged}})},
		{"a goodbye in n1's name", dropBadSignature, seal(wrongKey, kindGoodbye, n1.c.name, empty{})},
	}
	for _, c := range cases {
		before := n0.c.Stats().Dropped[c.reason]
		delegate{n0.c}.NotifyMsg(c.msg)
		waitFor(t, 2*time.Second, func() bool { return n0.c.Stats().Dropped[c.reason] == before+1 }, "%s: not dropped as %s", c.name, c.reason)
	}
	// evil starts a second agent that claims n1's name, newer than n1's start.
	impostor := startNode(t, "n1", 73, []string{n0.c.Addr()}, nodeOptions{keys: key})
	impostor.c.Publish([]discovery.Target{target("n1", 3, impostor.ip)}, "")
	waitFor(t, 5*time.Second, func() bool { return n0.c.Stats().MembersRefused[refuseNameTaken] > 0 }, "the second start claiming n1 was not refused")

	moved := real
	moved.Weight = 7
	n1.c.Publish([]discovery.Target{moved}, "")
	waitFor(t, 5*time.Second, func() bool { got, ok := find(n0, real.ID); return ok && got.Weight == 7 }, "n1's own later change did not arrive")
	if got := n0.c.Targets(); len(got) != 1 || got[0].Address != real.Address {
		t.Fatalf("n0 routes %+v, want n1's real target only", got)
	}
	goodbyes := func() int { n0.c.mu.Lock(); defer n0.c.mu.Unlock(); return len(n0.c.goodbyes) }
	if goodbyes() != 0 {
		t.Fatal("a forged goodbye was recorded")
	}
}

// TestFloodsStayBounded: forged owners, unknown senders and oversized
// messages allocate nothing that stays and trigger no recompilation.
func TestFloodsStayBounded(t *testing.T) {
	nodes := cluster(t, 2)
	n0, evil := nodes[0], nodes[1]
	own := target("n1", 1, evil.ip)
	evil.c.Publish([]discovery.Target{own}, "")
	waitFor(t, 5*time.Second, func() bool { _, ok := find(n0, own.ID); return ok }, "the member's own target did not arrive")
	time.Sleep(time.Second) // the pull after the first change settles
	select {
	case <-n0.c.Changes(): // the arrival's own signal
	default:
	}
	var changes atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-n0.c.Changes():
				changes.Add(1)
			case <-stop:
				return
			}
		}
	}()
	big := toWire(target("n1", 2, evil.ip))
	for i := range maxGroupsPerTgt - 1 {
		big.Groups = append(big.Groups, fmt.Sprintf("group-%02d-%s", i, strings.Repeat("x", 20)))
	}
	_, ghostKey, _ := ed25519.GenerateKey(nil)
	const rounds = 3000
	sent := 0
	for i := range rounds {
		tg := toWire(target(fmt.Sprintf("forged-%d", i), 1, evil.ip))
		ghost := fmt.Sprintf("ghost-%d@1", i)
		ghostTarget := toWire(target(fmt.Sprintf("ghost-%d", i), 1, evil.ip))
		msgs := [][]byte{
			seal(evil.c.key, kindDelta, evil.c.name, delta{Owner: fmt.Sprintf("forged-%d", i), Epoch: int64(i + 1), Seq: 1, Target: &tg}),
			seal(ghostKey, kindGoodbye, ghost, empty{}),
			seal(ghostKey, kindInFlight, ghost, inFlightReport{Epoch: n0.c.epoch, Known: 1}),
			seal(ghostKey, kindDelta, ghost, delta{Owner: "ghost-" + strconv.Itoa(i), Epoch: 1, Seq: 1, Target: &ghostTarget}),
			seal(evil.c.key, kindDelta, evil.c.name, delta{Owner: "n1", Epoch: evil.c.epoch, Seq: uint64(1000 + i), Target: &big}),
		}
		for _, m := range msgs {
			n0.c.count(n0.c.handle(m)) // as the receive loop does, without its queue's back-pressure
			sent++
		}
	}
	if got := n0.c.Stats().Dropped; got[dropNotOwner] != rounds || got[dropUnknownSender] != 3*rounds || got[dropOversized] != rounds {
		t.Errorf("dropped %v, want %d not_owner, %d unknown_sender, %d oversized", got, rounds, 3*rounds, rounds)
	}
	n0.c.mu.Lock()
	owners, goodbyes, acks, names := len(n0.c.table.owners), len(n0.c.goodbyes), len(n0.c.acks), len(n0.c.names)
	n0.c.mu.Unlock()
	if owners > 1 || goodbyes > 0 || acks > 1 || names > 1 {
		t.Errorf("after %d forged messages: %d owners, %d goodbyes, %d acks, %d members known; want at most 1, 0, 1, 1", sent, owners, goodbyes, acks, names)
	}
	time.Sleep(200 * time.Millisecond)
	if n := changes.Load(); n > 0 {
		t.Errorf("the flood triggered %d recompilations, want 0", n)
	}
	if _, ok := find(n0, own.ID); !ok || len(n0.c.Targets()) != 1 {
		t.Errorf("the member's own state changed: %+v", n0.c.Targets())
	}
}
