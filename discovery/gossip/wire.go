package gossip

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/berth-lb/berth/discovery"
)

// Message kinds: the first byte of every message berth sends through memberlist.
const (
	kindDelta byte = 'D' // one change of the sender's target (direct fan-out and gossip)
	kindFull  byte = 'F' // the sender's whole state (answer to a pull, and push/pull)
	kindPull  byte = 'P' // "send me your full state"
	// kindGoodbye says the sender leaves on purpose (an agent stopping or
	// restarting): its targets stay routable for the rejoin grace.
	kindGoodbye byte = 'L'
	// kindInFlight reports to an owner what the sender has of its state and
	// how many requests it still has in flight to its draining targets.
	kindInFlight byte = 'I'
)

// Bounds on what a message may carry; anything larger is dropped and counted.
// docs/fleet.md states them.
const (
	// maxPacketBytes keeps a message in one UDP packet with memberlist's
	// overhead (compound header, encryption, label): deltas, in-flight
	// reports, pulls and goodbyes, envelope included.
	maxPacketBytes = 1200
	// maxFullBytes bounds a full state (a pull's answer, a push/pull).
	maxFullBytes = 4 << 20
	// maxTargets bounds one owner's records (targets and removals not yet
	// forgotten), maxTotalTargets every owner's together.
	maxTargets      = 4096
	maxTotalTargets = 65536
	// maxMembers bounds the members known here, dead ones included.
	maxMembers      = 1024
	maxNameBytes    = 128
	maxGroupsPerTgt = 64
	maxRulesPerTgt  = 16
)

// wireTarget is discovery.Target in a compact form: short keys keep a target's
// state under 200 bytes.
type wireTarget struct {
	ID        string        `json:"i"`
	Groups    []string      `json:"g"`
	Address   string        `json:"a"`
	LocalOnly bool          `json:"l,omitempty"`
	Weight    int           `json:"w"`
	Container string        `json:"c,omitempty"`
	Created   int64         `json:"t,omitempty"` // unix seconds
	Draining  bool          `json:"d,omitempty"`
	Health    string        `json:"h,omitempty"`  // Docker's HEALTHCHECK status
	Checked   string        `json:"ck,omitempty"` // the owner's active check result
	Reason    string        `json:"rs,omitempty"`
	Settings  *wireSettings `json:"s,omitempty"`
	Rules     []wireRule    `json:"r,omitempty"`
}

type wireSettings struct {
	DeregistrationDelay   *int64          `json:"dd,omitempty"` // milliseconds
	Algorithm             string          `json:"al,omitempty"`
	SlowStart             int64           `json:"ss,omitempty"` // milliseconds
	Health                *wireHealth     `json:"hc,omitempty"`
	Stickiness            *wireStickiness `json:"st,omitempty"`
	Protocol              string          `json:"pr,omitempty"`
	ProxyProtocol         string          `json:"pp,omitempty"`
	ConnectionTermination bool            `json:"ct,omitempty"`
}

// wireStickiness is discovery.StickinessSettings; the duration in milliseconds.
type wireStickiness struct {
	Type     string `json:"ty"`
	Cookie   string `json:"ck,omitempty"`
	Duration int64  `json:"du,omitempty"`
}

// wireHealth is discovery.HealthSettings; durations in milliseconds.
type wireHealth struct {
	Protocol  string `json:"pr,omitempty"`
	Path      string `json:"pa,omitempty"`
	Port      int    `json:"po,omitempty"`
	Interval  int64  `json:"iv,omitempty"`
	Timeout   int64  `json:"to,omitempty"`
	Healthy   int    `json:"hy,omitempty"`
	Unhealthy int    `json:"uh,omitempty"`
	Matcher   string `json:"m,omitempty"`
}

type wireRule struct {
	Listener  string                   `json:"l"`
	Priority  int                      `json:"p"`
	Hosts     []string                 `json:"h,omitempty"`
	Paths     []string                 `json:"pa,omitempty"`
	Methods   []string                 `json:"m,omitempty"`
	Headers   map[string][]string      `json:"hd,omitempty"`
	Queries   []discovery.QueryPattern `json:"q,omitempty"`
	SourceIPs []string                 `json:"si,omitempty"`
	Group     string                   `json:"g"`
}

// delta is one change: a target added or changed, or removed.
type delta struct {
	Owner      string      `json:"o"`
	Epoch      int64       `json:"e"`
	Seq        uint64      `json:"s"`
	SentAt     int64       `json:"at"` // unix nanoseconds, for the propagation delay
	ConfigHash string      `json:"ch,omitempty"`
	Removed    string      `json:"x,omitempty"` // the removed target's ID
	Target     *wireTarget `json:"tg,omitempty"`
}

// full is one owner's whole state at (Epoch, Seq).
type full struct {
	Owner      string       `json:"o"`
	Epoch      int64        `json:"e"`
	Seq        uint64       `json:"s"`
	SentAt     int64        `json:"at"`
	ConfigHash string       `json:"ch,omitempty"`
	Targets    []wireTarget `json:"tg"`
}

// inFlightReport is what a node tells an owner: the version of the owner's
// state (Epoch, Known) whose every change it has, and its in-flight counts
// for the owner's draining targets.
type inFlightReport struct {
	Epoch  int64            `json:"e"`
	Known  uint64           `json:"k"`
	Counts map[string]int64 `json:"c,omitempty"`
}

// empty is the body of a pull and a goodbye: the envelope says who sends it.
type empty struct{}

// A sealed message is the kind, the sender's memberlist name (a length byte,
// then the name), the JSON body, then the sender's ed25519 signature of all
// that. The sender's public key is in its memberlist meta: a receiver trusts
// a message only when it verifies against the key of the member it names.
func seal(key ed25519.PrivateKey, kind byte, from string, v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		panic("gossip: encode: " + err.Error()) // only our own plain structs are encoded
	}
	return sealBody(key, kind, from, body)
}

func sealBody(key ed25519.PrivateKey, kind byte, from string, body []byte) []byte {
	msg := make([]byte, 0, 2+len(from)+len(body)+ed25519.SignatureSize)
	msg = append(msg, kind, byte(len(from)))
	msg = append(msg, from...)
	msg = append(msg, body...)
	return append(msg, ed25519.Sign(key, msg)...)
}

// envelope is a sealed message taken apart, its signature not checked yet.
type envelope struct {
	kind      byte
	from      string
	body      []byte
	signed    []byte
	signature []byte
	payload   any // *delta, *full, *inFlightReport or empty
}

func (e *envelope) verify(key []byte) bool {
	return len(key) == ed25519.PublicKeySize && ed25519.Verify(key, e.signed, e.signature)
}

// limit is the largest message of a kind.
func limit(kind byte) int {
	if kind == kindFull {
		return maxFullBytes
	}
	return maxPacketBytes
}

// decodeMessage takes a received message apart and checks everything that
// needs no state: size by kind, framing, the body's fields. The sender and
// its signature are checked by the caller, against the member list.
func decodeMessage(msg []byte) (*envelope, error) {
	if len(msg) == 0 {
		return nil, drop(dropMalformed, "empty message")
	}
	if len(msg) > limit(msg[0]) {
		return nil, drop(dropOversized, "kind %q: %d bytes, limit %d", msg[0], len(msg), limit(msg[0]))
	}
	if len(msg) < 2 || len(msg) < 2+int(msg[1])+ed25519.SignatureSize {
		return nil, drop(dropMalformed, "kind %q: %d bytes, too short for its envelope", msg[0], len(msg))
	}
	n, end := int(msg[1]), len(msg)-ed25519.SignatureSize
	e := &envelope{kind: msg[0], from: string(msg[2 : 2+n]), body: msg[2+n : end], signed: msg[:end], signature: msg[end:]}
	if _, _, ok := parseName(e.from); !ok {
		return nil, drop(dropMalformed, "sender %q is not node@epoch", e.from)
	}
	var err error
	switch e.kind {
	case kindDelta:
		var d delta
		if err = decode(e.body, &d); err == nil {
			err = d.check()
		}
		e.payload = &d
	case kindFull:
		var f full
		if err = decode(e.body, &f); err == nil {
			err = f.check()
		}
		e.payload = &f
	case kindInFlight:
		var r inFlightReport
		err = decode(e.body, &r)
		e.payload = &r
	case kindPull, kindGoodbye:
		var p empty
		err = decode(e.body, &p)
		e.payload = p
	default:
		return nil, drop(dropMalformed, "unknown kind %q", e.kind)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Reasons a received message is dropped, the label values of the drop counter.
const (
	dropMalformed = "malformed"
	dropOversized = "oversized"
	dropStale     = "stale"
	dropForeign   = "foreign"
	dropQueueFull = "queue_full"
	// dropUnknownSender: the sender is not a live member here.
	dropUnknownSender = "unknown_sender"
	// dropBadSignature: the signature does not verify with the sender's key.
	dropBadSignature = "bad_signature"
	// dropNotOwner: a state about another owner than its signer.
	dropNotOwner = "not_owner"
)

// dropError is a received message that must not be trusted.
type dropError struct {
	reason string
	err    error
}

func (e *dropError) Error() string { return "gossip: " + e.reason + " message: " + e.err.Error() }

func drop(reason, format string, args ...any) error {
	return &dropError{reason: reason, err: fmt.Errorf(format, args...)}
}

func decode(buf []byte, v any) error {
	if err := json.Unmarshal(buf, v); err != nil {
		return drop(dropMalformed, "%v", err)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > maxNameBytes {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func checkVersion(owner string, epoch int64) error {
	if !validName(owner) {
		return drop(dropMalformed, "owner %q is not a node name", owner)
	}
	if epoch <= 0 {
		return drop(dropMalformed, "owner %s: epoch %d", owner, epoch)
	}
	return nil
}

// checkTarget validates a target claimed by owner: a target of another owner is foreign.
func checkTarget(owner string, t *wireTarget) error {
	if !strings.HasPrefix(t.ID, owner+"/") || len(t.ID) > 3*maxNameBytes {
		return drop(dropForeign, "target %q does not belong to owner %s", t.ID, owner)
	}
	if ap, err := netip.ParseAddrPort(t.Address); err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return drop(dropMalformed, "target %s: address %q is not ip:port", t.ID, t.Address)
	}
	if len(t.Groups) == 0 || len(t.Groups) > maxGroupsPerTgt || len(t.Rules) > maxRulesPerTgt {
		return drop(dropMalformed, "target %s: %d groups, %d rules", t.ID, len(t.Groups), len(t.Rules))
	}
	for _, g := range t.Groups {
		if !validName(g) {
			return drop(dropMalformed, "target %s: group %q", t.ID, g)
		}
	}
	if t.Weight < 0 || t.Weight > 999 {
		return drop(dropMalformed, "target %s: weight %d", t.ID, t.Weight)
	}
	switch t.Health {
	case "", "starting", "healthy", "unhealthy":
	default:
		return drop(dropMalformed, "target %s: health %q", t.ID, t.Health)
	}
	switch t.Checked {
	case "", "initial", "healthy", "unhealthy":
	default:
		return drop(dropMalformed, "target %s: health check result %q", t.ID, t.Checked)
	}
	if len(t.Reason) > 64 {
		return drop(dropMalformed, "target %s: reason of %d bytes", t.ID, len(t.Reason))
	}
	for _, r := range t.Rules {
		// Priority 0: the labels gave none, and every node places the rule
		// after the numbered ones in the same order (agent.compile).
		if !validName(r.Listener) || !validName(r.Group) || r.Priority < 0 || r.Priority > 50000 {
			return drop(dropMalformed, "target %s: rule %+v", t.ID, r)
		}
	}
	return nil
}

func (d *delta) check() error {
	if err := checkVersion(d.Owner, d.Epoch); err != nil {
		return err
	}
	if d.Seq == 0 {
		return drop(dropMalformed, "owner %s: delta with seq 0", d.Owner)
	}
	switch {
	case d.Target != nil && d.Removed == "":
		return checkTarget(d.Owner, d.Target)
	case d.Target == nil && d.Removed != "":
		if !strings.HasPrefix(d.Removed, d.Owner+"/") {
			return drop(dropForeign, "removal of %q by owner %s", d.Removed, d.Owner)
		}
		return nil
	}
	return drop(dropMalformed, "owner %s seq %d: a delta carries one target or one removal", d.Owner, d.Seq)
}

func (f *full) check() error {
	if err := checkVersion(f.Owner, f.Epoch); err != nil {
		return err
	}
	if len(f.Targets) > maxTargets {
		return drop(dropOversized, "owner %s: %d targets", f.Owner, len(f.Targets))
	}
	seen := make(map[string]bool, len(f.Targets))
	for i := range f.Targets {
		if err := checkTarget(f.Owner, &f.Targets[i]); err != nil {
			return err
		}
		if seen[f.Targets[i].ID] {
			return drop(dropMalformed, "owner %s: target %s twice", f.Owner, f.Targets[i].ID)
		}
		seen[f.Targets[i].ID] = true
	}
	return nil
}

func toWire(t discovery.Target) wireTarget {
	w := wireTarget{
		ID: t.ID, Groups: t.Groups, Address: t.Address, LocalOnly: t.LocalOnly, Weight: t.Weight,
		Container: t.ContainerName, Draining: t.Draining, Health: t.DockerHealth, Checked: t.Health, Reason: t.HealthReason,
	}
	if !t.Created.IsZero() {
		w.Created = t.Created.Unix()
	}
	if s := t.Settings; !s.IsZero() {
		w.Settings = &wireSettings{Algorithm: s.Algorithm, SlowStart: s.SlowStart.Milliseconds(), Protocol: s.Protocol,
			ProxyProtocol: s.ProxyProtocol, ConnectionTermination: s.ConnectionTermination}
		if s.DeregistrationDelay != nil {
			ms := s.DeregistrationDelay.Milliseconds()
			w.Settings.DeregistrationDelay = &ms
		}
		if h := s.Health; h != (discovery.HealthSettings{}) {
			w.Settings.Health = &wireHealth{Protocol: h.Protocol, Path: h.Path, Port: h.Port, Interval: h.Interval.Milliseconds(),
				Timeout: h.Timeout.Milliseconds(), Healthy: h.Healthy, Unhealthy: h.Unhealthy, Matcher: h.Matcher}
		}
		if st := s.Stickiness; st != (discovery.StickinessSettings{}) {
			w.Settings.Stickiness = &wireStickiness{Type: st.Type, Cookie: st.Cookie, Duration: st.Duration.Milliseconds()}
		}
	}
	for _, r := range t.Rules {
		w.Rules = append(w.Rules, wireRule{Listener: r.Listener, Priority: r.Priority, Hosts: r.Hosts, Paths: r.Paths,
			Methods: r.Methods, Headers: r.Headers, Queries: r.Queries, SourceIPs: r.SourceIPs, Group: r.Group})
	}
	return w
}

func fromWire(owner string, w wireTarget) discovery.Target {
	t := discovery.Target{
		ID: w.ID, Node: owner, Groups: w.Groups, Address: w.Address, LocalOnly: w.LocalOnly, Weight: w.Weight,
		ContainerName: w.Container, Draining: w.Draining, DockerHealth: w.Health, Health: w.Checked, HealthReason: w.Reason,
	}
	if w.Created != 0 {
		t.Created = time.Unix(w.Created, 0)
	}
	if s := w.Settings; s != nil {
		t.Settings = discovery.GroupSettings{Algorithm: s.Algorithm, SlowStart: time.Duration(s.SlowStart) * time.Millisecond, Protocol: s.Protocol,
			ProxyProtocol: s.ProxyProtocol, ConnectionTermination: s.ConnectionTermination}
		if s.DeregistrationDelay != nil {
			d := time.Duration(*s.DeregistrationDelay) * time.Millisecond
			t.Settings.DeregistrationDelay = &d
		}
		if h := s.Health; h != nil {
			t.Settings.Health = discovery.HealthSettings{Protocol: h.Protocol, Path: h.Path, Port: h.Port,
				Interval: time.Duration(h.Interval) * time.Millisecond, Timeout: time.Duration(h.Timeout) * time.Millisecond,
				Healthy: h.Healthy, Unhealthy: h.Unhealthy, Matcher: h.Matcher}
		}
		if st := s.Stickiness; st != nil {
			t.Settings.Stickiness = discovery.StickinessSettings{Type: st.Type, Cookie: st.Cookie, Duration: time.Duration(st.Duration) * time.Millisecond}
		}
	}
	for _, r := range w.Rules {
		t.Rules = append(t.Rules, discovery.Rule{Listener: r.Listener, Priority: r.Priority, Hosts: r.Hosts, Paths: r.Paths,
			Methods: r.Methods, Headers: r.Headers, Queries: r.Queries, SourceIPs: r.SourceIPs, Group: r.Group})
	}
	return t
}
