// Package gossip shares every agent's targets across the fleet with
// hashicorp/memberlist, without an external store. Each agent owns the targets
// of its host and is their only writer; its state is versioned by an epoch (one
// per agent start) and a sequence number (one per change). Each change travels
// as a small delta, directly to every member over TCP and by gossip as well;
// whole states travel in memberlist's push/pull and answer pulls when a node
// sees a gap. Every message is signed by the agent start that sends it, and
// carries only that start's own state (trust.go). Every received message is
// bounded, validated and, when it cannot be trusted, dropped and counted.
package gossip

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/berth-lb/berth/discovery"
)

// Options configure a Cluster.
type Options struct {
	// Node is this host's name: the owner of its targets, stable across restarts.
	Node string
	// Version is the agent's version, shown to the other nodes (Member.Version).
	Version string
	// Bind is "ip:port" for memberlist's UDP and TCP; port 0 picks one.
	Bind string
	// Advertise is the IP other nodes use to reach this one; "" uses Bind's.
	Advertise string
	// Join lists "host:port" of nodes to join; retried in the background until one answers.
	Join []string
	// Keys enable encryption (AES-GCM, 16, 24 or 32 bytes each); the first encrypts,
	// all decrypt, which allows rotation.
	Keys [][]byte
	// Label separates clusters sharing a network: nodes with another label are ignored.
	Label string
	// RejoinGrace keeps the targets of a node that left gracefully (an agent
	// restarting while its containers run) routable this long (default 60s).
	RejoinGrace time.Duration
	Logger      *slog.Logger
	// Transport replaces berth's network transport (tests: packet loss,
	// partitions); nil listens on Bind.
	Transport memberlist.NodeAwareTransport
	// Tune adjusts memberlist's config after berth's defaults (tests: faster failure detection).
	Tune func(*memberlist.Config)
	// InFlight tells how many requests this node has in flight to a target;
	// it is reported to the owners of draining targets (see DrainProgress).
	InFlight func(targetID string) int64
	// Reserved tells whether an address is one of this node's own sockets
	// (listeners, admin API, gossip): no remote target may point there.
	Reserved func(netip.AddrPort) bool
}

// Cluster is this node's membership and its view of the fleet's targets.
type Cluster struct {
	opts Options
	log  *slog.Logger
	ml   *memberlist.Memberlist
	// mlReady is ml for callbacks memberlist may make before Create returns.
	mlReady atomic.Pointer[memberlist.Memberlist]
	queue   *memberlist.TransmitLimitedQueue
	epoch   int64
	name    string // memberlist name: node@epoch, unique per start
	// key signs every message this start sends; its public half is in the meta.
	key  ed25519.PrivateKey
	logs limiter

	// mu guards the fields below. Nothing holding it calls into memberlist,
	// whose callbacks take it while memberlist holds its own lock.
	mu     sync.Mutex
	addr   string
	selfIP netip.Addr // zero until memberlist runs: no member is admitted before
	table  *table
	names  map[string]nameState // memberlist name -> owner and state
	// goodbyes holds the members that announced a graceful leave.
	goodbyes map[string]bool
	// suspects holds the live members that miss pings (suspect.go).
	suspects map[string]bool
	// reports holds, per own draining target, each member's last in-flight count.
	reports map[string]map[string]inFlightSeen
	// acks holds, per member, the version of this node's state it has whole.
	acks    map[string]uint64
	seq     uint64
	own     map[string]wireTarget
	ownHash string

	changes chan struct{}
	inbox   chan []byte
	metaDue atomic.Bool
	// reconnecting is true while a join of dead members runs.
	reconnecting atomic.Bool
	stats        stats
	outbox       chan directSend
	done         chan struct{}
	wg           sync.WaitGroup
}

// nameState is a copy of what memberlist told about one member. berth never
// reads memberlist's own Node values outside its callbacks: memberlist changes
// them under its lock, and Members() hands them out without it.
type nameState struct {
	owner string
	epoch int64
	state memberState
	since time.Time
	node  memberlist.Node // Name, Addr and Port only
	ip    netip.Addr
	meta  meta
}

// Berth's memberlist settings on top of the LAN defaults: fast gossip for
// propagation in tens of milliseconds, LAN failure detection (5-9 s).
const (
	gossipInterval   = 50 * time.Millisecond
	gossipNodes      = 4
	retransmitMult   = 4
	pushPullInterval = 15 * time.Second
	maxQueued        = 4096
	senders          = 16
	outboxSize       = 8192
	// tcpTimeout bounds a direct send or a push/pull to one member (LAN default: 10s).
	tcpTimeout = 3 * time.Second
	// suspicionMult sets how long a suspected member has to refute before it is
	// declared dead: suspicionMult x log10(members) x probe interval (LAN
	// default 4). At 3, a dead host leaves routing within 10 s at 50 members.
	suspicionMult  = 3
	repairInterval = 100 * time.Millisecond
	gapPatience    = 250 * time.Millisecond
	pullEvery      = time.Second
	defaultGrace   = 60 * time.Second
	inboxSize      = 1024
	// reconnectInterval paces the attempts to reach members believed dead.
	reconnectInterval = 2 * time.Second
	// forgetDead is how long the state of a dead node is kept, not routed, in
	// case it comes back (a partition that heals).
	forgetDead = 10 * time.Minute
)

// Start creates the memberlist node, starts its background work and joins in
// the background. An agent that cannot join yet still serves its own host.
func Start(opts Options) (*Cluster, error) {
	if !validName(opts.Node) {
		return nil, fmt.Errorf("gossip: node name %q: use letters, digits, '.', '_' and '-' (node.name)", opts.Node)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RejoinGrace <= 0 {
		opts.RejoinGrace = defaultGrace
	}
	c := &Cluster{
		opts: opts, log: opts.Logger, epoch: time.Now().UnixNano(),
		table: newTable(opts.Node), names: map[string]nameState{}, goodbyes: map[string]bool{}, suspects: map[string]bool{}, own: map[string]wireTarget{},
		reports: map[string]map[string]inFlightSeen{}, acks: map[string]uint64{},
		changes: make(chan struct{}, 1), inbox: make(chan []byte, inboxSize),
		outbox: make(chan directSend, outboxSize), done: make(chan struct{}),
	}
	c.name = opts.Node + "@" + strconv.FormatInt(c.epoch, 36)
	c.stats.init()
	var err error
	if _, c.key, err = ed25519.GenerateKey(nil); err != nil {
		return nil, fmt.Errorf("gossip: signing key: %w", err)
	}

	conf := memberlist.DefaultLANConfig()
	conf.Name = c.name
	host, port, err := net.SplitHostPort(opts.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip: cluster.bind %q: %w; use ip:port", opts.Bind, err)
	}
	conf.BindAddr = host
	if conf.BindPort, err = strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("gossip: cluster.bind %q: port: %w", opts.Bind, err)
	}
	conf.AdvertisePort = conf.BindPort
	if opts.Advertise != "" {
		conf.AdvertiseAddr = opts.Advertise
	}
	conf.GossipInterval, conf.GossipNodes, conf.RetransmitMult = gossipInterval, gossipNodes, retransmitMult
	conf.PushPullInterval = pushPullInterval
	conf.TCPTimeout = tcpTimeout
	conf.SuspicionMult = suspicionMult
	// memberlist compresses every packet with LZW by default, which allocates
	// a 16 KiB-plus table per message: it was most of the CPU of the
	// suspicion pings (suspect.go) and of gossip. berth's messages are a few
	// hundred bytes; a receiver reads compressed and plain messages alike, so
	// agents of either setting mix during an upgrade.
	conf.EnableCompression = false
	conf.Label = opts.Label
	if len(opts.Keys) > 0 {
		ring, err := memberlist.NewKeyring(opts.Keys, opts.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: cluster.secret-key-file: %w", err)
		}
		conf.Keyring = ring
		conf.GossipVerifyIncoming, conf.GossipVerifyOutgoing = true, true
	}
	conf.Delegate = delegate{c}
	conf.Events = events{c}
	conf.Alive = aliveDelegate{c}
	conf.Logger = log.New(&logAdapter{log: c.log}, "", 0)
	if opts.Transport != nil {
		conf.Transport = opts.Transport
	} else {
		t, err := newTransport(opts.Bind, c.log)
		if err != nil {
			return nil, err
		}
		conf.Transport = t
	}
	if opts.Tune != nil {
		opts.Tune(conf)
	}
	c.queue = &memberlist.TransmitLimitedQueue{NumNodes: c.numMembers, RetransmitMult: conf.RetransmitMult}
	ml, err := memberlist.Create(conf)
	if err != nil {
		conf.Transport.Shutdown()
		return nil, fmt.Errorf("gossip: start memberlist on %s: %w", opts.Bind, err)
	}
	c.ml = ml
	c.mlReady.Store(ml)
	local := ml.LocalNode() // read once: only this node's later alive messages change it
	ip, _ := netip.AddrFromSlice(local.Addr)
	c.mu.Lock()
	c.addr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	c.selfIP = ip.Unmap()
	c.mu.Unlock()
	c.wg.Add(3 + senders)
	go c.receiveLoop()
	go c.repairLoop()
	go c.probeLoop()
	for range senders {
		go c.sender()
	}
	return c, nil
}

func (c *Cluster) numMembers() int {
	if ml := c.mlReady.Load(); ml != nil {
		return ml.NumMembers()
	}
	return 1
}

// Name is this node's memberlist name, unique per agent start.
func (c *Cluster) Name() string { return c.name }

// Addr is the address memberlist listens on.
func (c *Cluster) Addr() string { return c.addr }

// alive returns copies of the other live members.
func (c *Cluster) alive() []memberlist.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []memberlist.Node
	for _, ns := range c.names {
		if ns.state == memberAlive {
			out = append(out, ns.node)
		}
	}
	return out
}

// Changes receives a value whenever the routable remote targets may have changed.
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

func (c *Cluster) notify() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

// Targets returns the remote targets this node may route to, sorted by owner and ID.
// A target refused on receipt never gets here; one that became an own socket
// since (a listener added by a reload) is left out too. The targets of an
// owner that misses pings are marked Suspect.
func (c *Cluster) Targets() []discovery.Target {
	c.mu.Lock()
	targets := c.table.routable(time.Now(), c.opts.RejoinGrace)
	suspect := c.suspectOwners()
	c.mu.Unlock()
	for i := range targets {
		targets[i].Suspect = suspect[targets[i].Node]
	}
	return slices.DeleteFunc(targets, func(t discovery.Target) bool {
		ap, err := netip.ParseAddrPort(t.Address)
		return err != nil || c.reserved(ap)
	})
}

// Publish makes targets this node's state: each changed target becomes one
// versioned delta, sent at once to every member over TCP and gossiped as
// well, so a member that misses one copy gets the other. configHash is this node's hash of its listeners and groups config.
func (c *Cluster) Publish(targets []discovery.Target, configHash string) {
	var deltas []*delta
	now := time.Now().UnixNano()
	c.mu.Lock()
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		w := toWire(t)
		seen[w.ID] = true
		if cur, ok := c.own[w.ID]; ok && reflect.DeepEqual(cur, w) {
			continue
		}
		c.seq++
		c.own[w.ID] = w
		deltas = append(deltas, &delta{Owner: c.opts.Node, Epoch: c.epoch, Seq: c.seq, SentAt: now, ConfigHash: configHash, Target: &w})
	}
	for id := range c.own {
		if !seen[id] {
			c.seq++
			delete(c.own, id)
			deltas = append(deltas, &delta{Owner: c.opts.Node, Epoch: c.epoch, Seq: c.seq, SentAt: now, ConfigHash: configHash, Removed: id})
		}
	}
	hashChanged := c.ownHash != configHash
	c.ownHash = configHash
	c.mu.Unlock()

	var members []memberlist.Node
	if len(deltas) > 0 {
		members = c.alive()
	}
	for _, d := range deltas {
		msg := seal(c.key, kindDelta, c.name, d)
		if len(msg) > maxPacketBytes {
			// Receivers refuse it: the new seq in the meta makes them pull
			// the full state instead.
			continue
		}
		c.sendToAll(members, msg)
		c.queue.QueueBroadcast(broadcast(msg))
	}
	if c.queue.NumQueued() > maxQueued {
		c.queue.Prune(maxQueued)
	}
	if len(deltas) > 0 || hashChanged {
		c.metaDue.Store(true)
	}
}

// directSend is one message for one member, waiting in the outbox.
type directSend struct {
	to  memberlist.Node
	msg []byte
}

// sendToAll queues msg for every member; the senders deliver it over TCP. It
// never blocks: a member that does not answer holds a sender, not the agent.
// When the outbox is full the message is left to gossip and pulls.
func (c *Cluster) sendToAll(members []memberlist.Node, msg []byte) {
	for _, n := range members {
		select {
		case c.outbox <- directSend{n, msg}:
		default:
			c.stats.fanoutFailures.Add(1)
		}
	}
}

// sender delivers the outbox.
func (c *Cluster) sender() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case s := <-c.outbox:
			if err := c.ml.SendReliable(&s.to, s.msg); err != nil {
				c.stats.fanoutFailures.Add(1)
				c.log.Debug("gossip: direct send failed; gossip and pulls will carry it", "to", s.to.Name, "err", err)
				continue
			}
			c.stats.fanoutSends.Add(1)
		}
	}
}

// receiveLoop applies received messages one at a time, off memberlist's
// packet loop, which must not block.
func (c *Cluster) receiveLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case msg := <-c.inbox:
			c.count(c.handle(msg))
		}
	}
}

// count records why a message was dropped.
func (c *Cluster) count(err error) {
	var de *dropError
	if errors.As(err, &de) {
		c.stats.drop(de.reason)
		c.log.Debug("gossip: message dropped", "reason", de.reason, "err", de.err)
	}
}

// handle applies one received message. Its sender must be a live member and
// its signature verify with that member's key; a state must be the sender's
// own, and its targets at the sender's address. An unknown or forged sender
// changes nothing and allocates nothing that outlives the call.
func (c *Cluster) handle(msg []byte) error {
	e, err := decodeMessage(msg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	sender, known := c.names[e.from]
	c.mu.Unlock()
	if !known || sender.state != memberAlive {
		return drop(dropUnknownSender, "%s is not a live member", e.from)
	}
	if !e.verify(sender.meta.Key) {
		return drop(dropBadSignature, "from %s", e.from)
	}
	now := time.Now()
	switch p := e.payload.(type) {
	case *delta:
		if p.Owner != sender.owner || p.Epoch != sender.epoch {
			return drop(dropNotOwner, "%s sent a change of %s@%d", e.from, p.Owner, p.Epoch)
		}
		c.refuseTargets(e.from, sender.ip, p)
		c.mu.Lock()
		changed, err := c.table.applyDelta(p, now)
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if changed {
			c.stats.observePropagation(now.Sub(time.Unix(0, p.SentAt)))
			c.notify()
		}
	case *full:
		if p.Owner != sender.owner || p.Epoch != sender.epoch {
			return drop(dropNotOwner, "%s sent the state of %s@%d", e.from, p.Owner, p.Epoch)
		}
		c.refuseTargets(e.from, sender.ip, p)
		c.mu.Lock()
		changed, err := c.table.applyFull(p)
		c.mu.Unlock()
		if changed {
			c.notify()
		}
		return err
	case *inFlightReport:
		c.recordInFlight(e.from, p, now)
	case empty:
		if e.kind == kindPull {
			c.answerPull(sender.node)
			return nil
		}
		c.mu.Lock()
		c.goodbyes[e.from] = true
		c.mu.Unlock()
	}
	return nil
}

// ownFull is this node's whole state.
func (c *Cluster) ownFull() full {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := full{Owner: c.opts.Node, Epoch: c.epoch, Seq: c.seq, SentAt: time.Now().UnixNano(), ConfigHash: c.ownHash, Targets: make([]wireTarget, 0, len(c.own))}
	for _, w := range c.own {
		f.Targets = append(f.Targets, w)
	}
	return f
}

func (c *Cluster) answerPull(to memberlist.Node) {
	msg := seal(c.key, kindFull, c.name, c.ownFull())
	go func() {
		if err := c.ml.SendReliable(&to, msg); err != nil {
			c.log.Debug("gossip: answering a pull failed", "to", to.Name, "err", err)
		}
	}()
}

// repairLoop pulls the full state of owners with a gap, follows suspicion,
// refreshes this node's meta and retries joining while alone.
func (c *Cluster) repairLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(repairInterval)
	defer tick.Stop()
	lastPull := map[string]time.Time{}
	lastReport := map[string]sentReport{}
	var nextJoin, nextReconnect time.Time
	joinBackoff := 500 * time.Millisecond
	for {
		select {
		case <-c.done:
			return
		case now := <-tick.C:
			if c.metaDue.Swap(false) {
				if err := c.ml.UpdateNode(time.Second); err != nil {
					c.log.Debug("gossip: meta update", "err", err)
				}
			}
			c.followMembers(now, lastPull)
			c.report(now, lastReport)
			if now.After(nextReconnect) {
				nextReconnect = now.Add(reconnectInterval)
				c.reconnect()
			}
			if len(c.opts.Join) > 0 && c.ml.NumMembers() <= 1 && now.After(nextJoin) {
				if err := c.join(); err != nil {
					nextJoin = now.Add(joinBackoff)
					joinBackoff = min(2*joinBackoff, 10*time.Second)
				} else {
					joinBackoff = 500 * time.Millisecond
				}
			}
		}
	}
}

// reconnect tries to join the members it believes dead: memberlist stops
// talking to dead nodes, so the two sides of a healed partition would never
// meet again (serf's reconnector does the same).
func (c *Cluster) reconnect() {
	var addrs []string
	c.mu.Lock()
	for _, ns := range c.names {
		if ns.state == memberDead {
			addrs = append(addrs, ns.node.Address())
		}
	}
	c.mu.Unlock()
	if len(addrs) == 0 || !c.reconnecting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.reconnecting.Store(false)
		if n, _ := c.ml.Join(addrs); n > 0 {
			c.log.Info("gossip: reached members believed dead again", "count", n)
		}
	}()
}

// join tries the join list once.
func (c *Cluster) join() error {
	n, err := c.ml.Join(c.opts.Join)
	if n > 0 {
		c.log.Info("gossip: joined the cluster", "contacted", n, "members", c.ml.NumMembers())
		return nil
	}
	c.stats.joinFailures.Add(1)
	if c.stats.joinFailures.Load() == 1 || c.stats.joinFailures.Load()%30 == 0 {
		c.log.Warn("gossip: cannot join the cluster yet; serving this host's targets and retrying",
			"join", c.opts.Join, "err", err,
			"hint", "check cluster.join, that the other agents run, and that cluster.secret-key-file and cluster.label match")
	}
	if err == nil {
		err = errors.New("gossip: no node answered")
	}
	return err
}

// meta is what each node publishes in memberlist's node meta (<= 512 bytes).
type meta struct {
	Epoch      int64  `json:"e"`
	Seq        uint64 `json:"s"`
	ConfigHash string `json:"ch,omitempty"`
	Version    string `json:"v,omitempty"`
	// Key is the start's ed25519 public key: its messages verify with it.
	Key []byte `json:"k"`
}

func decodeMeta(b []byte) (meta, bool) {
	var m meta
	if len(b) == 0 || len(b) > 512 || json.Unmarshal(b, &m) != nil {
		return meta{}, false
	}
	return m, true
}

// followMembers reconciles owners with their members' states, forgets long
// dead members and owners, and asks owners with a gap, or whose meta is ahead
// of what arrived, for their full state.
func (c *Cluster) followMembers(now time.Time, lastPull map[string]time.Time) {
	var pulls []memberlist.Node
	changed := false
	c.mu.Lock()
	live := map[string]nameState{} // owner -> its live start
	for name, ns := range c.names {
		if ns.state >= memberLeft && now.Sub(ns.since) > forgetDead {
			delete(c.names, name)
			delete(c.acks, name)
			delete(c.goodbyes, name)
			continue
		}
		if ns.state != memberAlive {
			continue
		}
		if cur, ok := live[ns.owner]; !ok || c.preferred(ns, cur) {
			live[ns.owner] = ns
		}
	}
	for owner, ns := range live {
		o := c.table.owners[owner]
		if o == nil {
			if now.Sub(lastPull[owner]) > pullEvery {
				lastPull[owner] = now
				pulls = append(pulls, ns.node)
			}
			continue
		}
		if ns.epoch != o.epoch {
			// The owner's state is its live start's: an older or newer start
			// whose member is gone gives way to it.
			o.restart(ns.epoch, now)
		}
		if ns.meta.ConfigHash != "" {
			o.configHash = ns.meta.ConfigHash
		}
		behind := ns.meta.Seq > o.complete
		gap := !o.needFullFrom.IsZero() && now.Sub(o.needFullFrom) > gapPatience
		if (behind || gap) && now.Sub(lastPull[owner]) > pullEvery {
			lastPull[owner] = now
			pulls = append(pulls, ns.node)
		}
	}
	for owner := range lastPull {
		if _, ok := live[owner]; !ok {
			delete(lastPull, owner)
		}
	}
	for owner, o := range c.table.owners {
		st := c.ownerMember(owner)
		if st != o.member {
			o.member, o.memberSince = st, now
			changed = true
		}
		if o.member == memberDead && now.Sub(o.memberSince) > forgetDead {
			delete(c.table.owners, owner)
		}
	}
	c.mu.Unlock()
	if len(pulls) > 0 {
		msg := seal(c.key, kindPull, c.name, empty{})
		for _, n := range pulls {
			c.stats.pulls.Add(1)
			go c.ml.SendReliable(&n, msg)
		}
	}
	if changed {
		c.notify()
	}
}

// preferred tells which of two live starts of one owner holds its state: the
// one whose state is here already, else the newer. admit lets a second start
// in only once the first is gone, so two are alive only for moments.
func (c *Cluster) preferred(a, b nameState) bool {
	if o := c.table.owners[a.owner]; o != nil && (a.epoch == o.epoch) != (b.epoch == o.epoch) {
		return a.epoch == o.epoch
	}
	return a.epoch > b.epoch
}

// ownerMember is the best state among an owner's memberlist names: a new
// agent alive beside its old, dead start is alive.
func (c *Cluster) ownerMember(owner string) memberState {
	best, found := memberDead, false
	for _, ns := range c.names {
		if ns.owner == owner && (!found || ns.state < best) {
			best, found = ns.state, true
		}
	}
	if !found {
		return memberDead
	}
	return best
}

// observe records what memberlist says about a member it admitted (admit);
// called from its event callbacks, which run one at a time.
func (c *Cluster) observe(n *memberlist.Node, state memberState) {
	if n.Name == c.name {
		return
	}
	owner, epoch, _ := parseName(n.Name)
	m, _ := decodeMeta(n.Meta)
	ip, _ := netip.AddrFromSlice(n.Addr)
	copied := memberlist.Node{Name: n.Name, Addr: append(net.IP(nil), n.Addr...), Port: n.Port}
	c.mu.Lock()
	prev, known := c.names[n.Name]
	since := time.Now()
	if known && prev.state == state {
		since = prev.since
	}
	c.names[n.Name] = nameState{owner: owner, epoch: epoch, state: state, since: since, node: copied, ip: ip.Unmap(), meta: m}
	c.mu.Unlock()
	if !known || prev.state != state {
		c.log.Info("gossip: member "+state.String(), "member", n.Name, "address", copied.Address())
		c.notify()
	}
}

// parseName splits a memberlist name "node@epoch36".
func parseName(name string) (owner string, epoch int64, ok bool) {
	i := strings.LastIndexByte(name, '@')
	if i <= 0 {
		return "", 0, false
	}
	epoch, err := strconv.ParseInt(name[i+1:], 36, 64)
	return name[:i], epoch, err == nil && validName(name[:i])
}

// Close leaves the cluster (others keep this host's targets for their rejoin
// grace: its containers still run) and stops memberlist.
func (c *Cluster) Close(timeout time.Duration) error {
	c.sayGoodbye(timeout / 2)
	err := c.ml.Leave(timeout)
	close(c.done)
	c.wg.Wait()
	if serr := c.ml.Shutdown(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// inFlightSeen is one member's report for one target.
type inFlightSeen struct {
	count int64
	at    time.Time
}

// reportFresh is how long a member's in-flight report counts.
const reportFresh = time.Second

// report tells every live owner what this node knows of it: the version of
// its state whose every change arrived here (so the owner knows when the
// whole fleet has a change), and, for each of its draining targets, the
// requests in flight to it from here, zero included (so it knows when a drain
// is over everywhere). A report goes when something changed, else every
// reportRefresh.
func (c *Cluster) report(now time.Time, last map[string]sentReport) {
	type pending struct {
		node memberlist.Node
		r    inFlightReport
	}
	var out []pending
	c.mu.Lock()
	for _, ns := range c.names {
		o := c.table.owners[ns.owner]
		if ns.state != memberAlive || o == nil || o.epoch != ns.epoch {
			continue
		}
		r := inFlightReport{Epoch: o.epoch, Known: o.complete}
		for id, rec := range o.records {
			if !rec.removed && rec.target.Draining {
				if r.Counts == nil {
					r.Counts = map[string]int64{}
				}
				r.Counts[id] = 0
			}
		}
		out = append(out, pending{ns.node, r})
	}
	c.mu.Unlock()
	for _, p := range out {
		for id := range p.r.Counts {
			if c.opts.InFlight != nil {
				p.r.Counts[id] = c.opts.InFlight(id)
			}
		}
		prev := last[p.node.Name]
		refresh := reportRefresh
		if len(p.r.Counts) > 0 {
			refresh = drainReportRefresh // an owner waiting for a drain needs fresh counts
		}
		if prev.known == p.r.Known && maps.Equal(prev.counts, p.r.Counts) && now.Sub(prev.at) < refresh {
			continue // nothing new, and not due
		}
		last[p.node.Name] = sentReport{known: p.r.Known, counts: p.r.Counts, at: now}
		c.ml.SendBestEffort(&p.node, seal(c.key, kindInFlight, c.name, p.r))
	}
	current := make(map[string]bool, len(out))
	for _, p := range out {
		current[p.node.Name] = true
	}
	for name := range last {
		if !current[name] {
			delete(last, name) // a member gone: nothing to repeat to it
		}
	}
}

// sentReport is the last report sent to one owner.
type sentReport struct {
	known  uint64
	counts map[string]int64
	at     time.Time
}

// A report goes when it changed; an unchanged one is repeated every
// reportRefresh so the owner sees who is alive and in sync, and every
// drainReportRefresh while the owner has draining targets (it counts a
// report as fresh for reportFresh).
const (
	reportRefresh      = 2 * time.Second
	drainReportRefresh = reportFresh / 2
)

func (c *Cluster) recordInFlight(from string, r *inFlightReport, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Epoch == c.epoch {
		c.acks[from] = r.Known
	}
	for id, n := range r.Counts {
		if _, own := c.own[id]; !own || n < 0 {
			continue // not ours, or nonsense: the report cannot change anything
		}
		if c.reports[id] == nil {
			c.reports[id] = map[string]inFlightSeen{}
		}
		c.reports[id][from] = inFlightSeen{count: n, at: now}
	}
	for id := range c.reports {
		if _, own := c.own[id]; !own {
			delete(c.reports, id)
		}
	}
}

// DrainProgress returns, for one of this node's draining targets, the
// requests other members reported in flight to it and how many of the live
// members reported within the last second. The drain is over fleet-wide when
// every live member reported (reported == members) and inFlight, with this
// node's own count, is zero.
func (c *Cluster) DrainProgress(id string) (inFlight int64, reported, members int) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, ns := range c.names {
		if ns.state != memberAlive {
			continue
		}
		members++
		if seen, ok := c.reports[id][name]; ok && now.Sub(seen.at) < reportFresh {
			reported++
			inFlight += seen.count
		}
	}
	return inFlight, reported, members
}

// sayGoodbye tells every live member, directly, that this node leaves on
// purpose, so they keep its targets for their rejoin grace.
func (c *Cluster) sayGoodbye(timeout time.Duration) {
	msg := seal(c.key, kindGoodbye, c.name, empty{})
	var wg sync.WaitGroup
	for _, n := range c.alive() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.ml.SendReliable(&n, msg)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// delegate and events are memberlist's callbacks.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte {
	d.c.mu.Lock()
	m := meta{Epoch: d.c.epoch, Seq: d.c.seq, ConfigHash: d.c.ownHash, Version: d.c.opts.Version, Key: d.c.key.Public().(ed25519.PublicKey)}
	d.c.mu.Unlock()
	b, _ := json.Marshal(m)
	// The key must fit; what is shown only goes first.
	for _, drop := range []*string{&m.Version, &m.ConfigHash} {
		if len(b) <= limit {
			break
		}
		*drop = ""
		b, _ = json.Marshal(m)
	}
	return b
}

func (d delegate) NotifyMsg(b []byte) {
	msg := bytes.Clone(b)
	select {
	case d.c.inbox <- msg:
	default:
		d.c.stats.drop(dropQueueFull)
	}
}

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.queue.GetBroadcasts(overhead, limit)
}

// LocalState is this node's own state only: a node never relays another's,
// so every copy of a state comes signed from its owner.
func (d delegate) LocalState(join bool) []byte {
	c := d.c
	msg := seal(c.key, kindFull, c.name, c.ownFull())
	c.stats.pushPullSent.Add(uint64(len(msg)))
	return msg
}

// MergeRemoteState takes the other side's own state. memberlist merges the
// member list first, so a joining sender is a member by now.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	c := d.c
	c.stats.pushPullReceived.Add(uint64(len(buf)))
	if len(buf) == 0 || buf[0] != kindFull {
		c.stats.drop(dropMalformed)
		return
	}
	c.count(c.handle(buf))
}

type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.c.observe(n, memberAlive)
	e.c.metaDue.Store(true) // the newcomer learns our seq at once
}

// NotifyLeave cannot tell a leave from a death: memberlist keeps that in a
// field it does not pass. A node that said goodbye first has left.
func (e events) NotifyLeave(n *memberlist.Node) {
	state := memberDead
	e.c.mu.Lock()
	if e.c.goodbyes[n.Name] {
		state = memberLeft
		delete(e.c.goodbyes, n.Name)
	}
	e.c.mu.Unlock()
	e.c.observe(n, state)
}

// NotifyUpdate reports a new meta (a change of seq or config hash) or a node
// alive again.
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.observe(n, memberAlive) }

// broadcast is a message queued for gossip; it never invalidates another:
// receivers need every seq, and versions make duplicates harmless.
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// logAdapter turns memberlist's log lines into structured logs, and says what
// to do about the ones a user causes, once a minute at most for each kind.
type logAdapter struct {
	log   *slog.Logger
	limit limiter
}

func (l *logAdapter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(line, "decrypt") || strings.Contains(line, "Encryption is configured but remote state is not encrypted"):
		l.limit.once("key", func() {
			l.log.Error("gossip: a node's messages cannot be decrypted: it uses another cluster.secret-key-file, or none", "memberlist", line)
		})
	case strings.Contains(line, "label"):
		l.limit.once("label", func() {
			l.log.Warn("gossip: a node with another cluster.label was ignored", "memberlist", line)
		})
	case strings.Contains(line, "ignoring alive message"):
		// A refused member: aliveDelegate counts and logs it once.
		l.log.Debug("gossip: memberlist", "msg", line)
	case strings.HasPrefix(line, "[ERR]"):
		l.log.Warn("gossip: memberlist", "msg", line)
	case strings.HasPrefix(line, "[WARN]"):
		l.log.Info("gossip: memberlist", "msg", line)
	default:
		l.log.Debug("gossip: memberlist", "msg", line)
	}
	return len(p), nil
}

// logRepeatEvery spaces out repeats of one kind of complaint (a join retried
// every few seconds with a wrong key, a member flooding refused targets would
// otherwise fill the log).
const logRepeatEvery = time.Minute

// limiter runs a log line of each kind at most once per logRepeatEvery. Its
// kinds are fixed strings, never names a peer chose, so it stays small.
type limiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *limiter) once(kind string, emit func()) {
	l.mu.Lock()
	now := time.Now()
	due := now.Sub(l.last[kind]) >= logRepeatEvery
	if due {
		if l.last == nil {
			l.last = map[string]time.Time{}
		}
		l.last[kind] = now
	}
	l.mu.Unlock()
	if due {
		emit()
	}
}
