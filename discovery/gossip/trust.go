package gossip

import (
	"errors"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// Who may be a member, and which targets a member may publish. docs/fleet.md
// ("Threat model") explains the rules; this file is where they are enforced.
//
// memberlist authenticates nothing but the fleet key, which every member
// holds. So each agent start signs its messages with its own ed25519 key,
// announced in its memberlist meta; a member name keeps the first key it
// announced here. An owner's state is accepted only from its own start,
// signed by it, and its targets only at its own address.

// Reasons a member is refused, the label values of the members refused counter.
const (
	refuseNotBerth     = "not_berth"     // no node@epoch name, or no key in its meta
	refuseKeyChanged   = "key_changed"   // a known name announced another key or address
	refuseTooMany      = "too_many"      // maxMembers are known
	refuseAddress      = "address"       // unspecified, link-local, multicast, or loopback across the loopback boundary
	refuseNameTaken    = "name_taken"    // this node's name, or a name another live start holds
	refuseAddressTaken = "address_taken" // this node's address, or a live member's of another owner
)

// Reasons a target is refused, the label values of the targets refused counter.
const (
	refuseNotOwnerAddress = "not_owner_address" // not the IP of the member that publishes it
	refuseSpecialAddress  = "special_address"   // unspecified, link-local or multicast
	refuseOwnPort         = "own_port"          // a socket of this node: listener, admin API, gossip
	refuseKeylessLoopback = "keyless_loopback"  // a loopback target in a fleet without a key
)

// refusal is a member refused by NotifyAlive, with its reason.
type refusal struct{ reason, detail string }

func (r *refusal) Error() string { return r.reason + ": " + r.detail }

// admit decides whether memberlist may take n as a member (its AliveDelegate).
// The caller holds c.mu.
func (c *Cluster) admit(n *memberlist.Node) error {
	if n.Name == c.name {
		return nil
	}
	owner, _, ok := parseName(n.Name)
	m, hasMeta := decodeMeta(n.Meta)
	if !ok || !hasMeta || len(m.Key) != 32 {
		return &refusal{refuseNotBerth, "the name is not node@epoch or the meta carries no key: not a berth agent"}
	}
	ip, _ := netip.AddrFromSlice(n.Addr)
	ip = ip.Unmap()
	if known, ok := c.names[n.Name]; ok {
		if string(known.meta.Key) != string(m.Key) || known.ip != ip {
			return &refusal{refuseKeyChanged, "a known member announced another key or address"}
		}
		return nil
	}
	if len(c.names) >= maxMembers {
		return &refusal{refuseTooMany, "too many members known"}
	}
	if !c.selfIP.IsValid() || !ip.IsValid() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
		ip.IsLoopback() != c.selfIP.IsLoopback() {
		return &refusal{refuseAddress, "the member's address " + ip.String() + " is not one a fleet member may have here"}
	}
	if owner == c.opts.Node {
		return &refusal{refuseNameTaken, "another agent claims this node's name " + owner}
	}
	if !ip.IsLoopback() && ip == c.selfIP {
		return &refusal{refuseAddressTaken, "another agent claims this node's address " + ip.String()}
	}
	for _, ns := range c.names {
		if ns.state != memberAlive {
			continue
		}
		if ns.owner == owner {
			return &refusal{refuseNameTaken, "node " + owner + " already runs as " + ns.node.Name}
		}
		if !ip.IsLoopback() && ns.ip == ip {
			return &refusal{refuseAddressTaken, "address " + ip.String() + " belongs to node " + ns.owner}
		}
	}
	return nil
}

// aliveDelegate is memberlist's AliveDelegate: it keeps refused members out.
type aliveDelegate struct{ c *Cluster }

func (a aliveDelegate) NotifyAlive(n *memberlist.Node) error {
	c := a.c
	c.mu.Lock()
	err := c.admit(n)
	c.mu.Unlock()
	var r *refusal
	if errors.As(err, &r) {
		c.stats.refuseMember(r.reason)
		c.logs.once("member "+r.reason, func() {
			c.log.Warn("gossip: a member was refused", "member", n.Name, "reason", r.reason, "why", r.detail)
		})
	}
	return err
}

// targetRefusal says why a target published by the member at ip may not be
// routed, or "" when it may. LocalOnly targets are never routed by another
// node, so their address is not checked.
func (c *Cluster) targetRefusal(ip netip.Addr, t *wireTarget) string {
	if t.LocalOnly {
		return ""
	}
	ap, _ := netip.ParseAddrPort(t.Address) // checked by checkTarget
	addr := ap.Addr().Unmap()
	switch {
	case addr.IsUnspecified() || addr.IsLinkLocalUnicast() || addr.IsMulticast() || addr.IsInterfaceLocalMulticast():
		return refuseSpecialAddress
	case addr != ip:
		return refuseNotOwnerAddress
	case c.reserved(netip.AddrPortFrom(addr, ap.Port())):
		return refuseOwnPort
	case addr.IsLoopback() && len(c.opts.Keys) == 0:
		// Without a key any process of this host can join a loopback fleet
		// under a name of its own: its loopback targets would put the
		// host's private services (a database on 127.0.0.1) behind the
		// public listeners. Agents that share a host form a fleet with a key.
		return refuseKeylessLoopback
	}
	return ""
}

func (c *Cluster) reserved(ap netip.AddrPort) bool {
	return c.opts.Reserved != nil && c.opts.Reserved(ap)
}

// refuseTargets drops the targets of e's state that its sender may not
// publish: a refused target of a delta becomes its removal, so a target that
// moved to a refused address leaves routing. Each refusal is counted, and
// logged once a minute per reason.
func (c *Cluster) refuseTargets(from string, ip netip.Addr, payload any) {
	refuse := func(t *wireTarget) bool {
		reason := c.targetRefusal(ip, t)
		if reason == "" {
			return false
		}
		c.stats.refuseTarget(reason)
		c.logs.once("target "+reason, func() {
			c.log.Warn("gossip: a member's target was refused", "member", from, "target", t.ID, "address", t.Address, "reason", reason)
		})
		return true
	}
	switch p := payload.(type) {
	case *delta:
		if p.Target != nil && refuse(p.Target) {
			p.Removed, p.Target = p.Target.ID, nil
		}
	case *full:
		kept := p.Targets[:0]
		for i := range p.Targets {
			if !refuse(&p.Targets[i]) {
				kept = append(kept, p.Targets[i])
			}
		}
		p.Targets = kept
	}
}
