package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/balancer"
	"github.com/berth-lb/berth/internal/handover"
)

// adminSocket names the admin API's socket in a hand-over: a listener name
// cannot hold a dot, so it never collides with one.
const adminSocket = "admin.api"

// Timeouts of the new agent's side of a hand-over.
const (
	// dialTimeout bounds the predecessor's answer with its sockets.
	dialTimeout = 5 * time.Second
	// fleetWait bounds the wait for the fleet's targets before a new agent
	// tells its predecessor it is ready: past it, it serves with what it has.
	fleetWait = 10 * time.Second
)

// identity is what a successor must share with this agent to take over.
func identity(cfg *config.Config) handover.Identity {
	return handover.Identity{Node: cfg.Node.Name, Admin: cfg.Admin.Listen}
}

// succession is a new agent's hand-over from the agent it replaces.
type succession struct {
	pred *handover.Client // nil: no predecessor
	// admin is the admin API's socket, when the predecessor handed it over.
	admin *os.File
	// serve: this agent serves the control socket for its own successor. Not
	// when another agent holds it and would not hand over (another node, or
	// a refusal): the path stays that agent's.
	serve bool
}

// takeOver connects to the running agent of this node, if any, and gives the
// balancer its sockets, so that Apply serves on them instead of binding.
func (a *Agent) takeOver(ctx context.Context, cfg *config.Config) succession {
	path := cfg.Upgrade.Socket
	if path == "" {
		return succession{}
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	pred, err := handover.Dial(dctx, path, identity(cfg))
	switch {
	case errors.Is(err, handover.ErrNoPredecessor):
		return succession{serve: true}
	case err != nil:
		a.log.Warn("agent: cannot take over from the running agent; binding the listeners instead", "upgrade_socket", path, "err", err)
		return succession{}
	}
	s := succession{pred: pred, serve: true}
	var socks []balancer.Socket
	for _, hs := range pred.Sockets() {
		if hs.Name == adminSocket && hs.Address == cfg.Admin.Listen {
			s.admin = hs.File
			continue
		}
		socks = append(socks, balancer.Socket{Listener: hs.Name, Address: hs.Address, Network: hs.Network, File: hs.File})
	}
	a.lb.Inherit(socks)
	a.log.Info("agent: taking over from the running agent", "upgrade_socket", path, "sockets", len(pred.Sockets()))
	return s
}

// listenAdmin serves the admin API on the predecessor's socket, else binds it.
func (s *succession) listenAdmin(addr string) (net.Listener, error) {
	if s.admin == nil {
		return net.Listen("tcp", addr)
	}
	f := s.admin
	s.admin = nil
	defer f.Close() // FileListener made its own copy
	return net.FileListener(f)
}

// release makes the predecessor leave the fleet, so this agent can bind the
// gossip port. The predecessor goes on serving with the fleet's last targets
// it knew until this agent is ready.
func (s *succession) release(ctx context.Context) error {
	if s.pred == nil {
		return nil
	}
	if err := s.pred.Release(ctx); err != nil {
		return fmt.Errorf("agent: the running agent did not leave the fleet: %w", err)
	}
	return nil
}

// abandon ends a hand-over that will not complete (this agent fails to
// start): the predecessor goes on serving.
func (s *succession) abandon() {
	if s.pred != nil {
		s.pred.Close()
		s.pred = nil
	}
	if s.admin != nil {
		s.admin.Close()
		s.admin = nil
	}
}

// awaitFleet waits, when this agent took over and joins a fleet, until every
// other live node's targets have arrived (or fleetWait passes), so that
// routing is complete before the predecessor stops accepting.
func (a *Agent) awaitFleet(ctx context.Context, cfg *config.Config) {
	if a.cluster == nil || len(cfg.Cluster.Join) == 0 {
		return
	}
	deadline := time.NewTimer(fleetWait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !a.fleetKnown(cfg.Node.Name) {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			a.log.Warn("agent: the fleet's targets did not all arrive in time; taking over with those known", "waited", fleetWait)
			return
		case <-tick.C:
		}
	}
}

// fleetKnown: another node is alive and every alive node's state has fully
// arrived.
func (a *Agent) fleetKnown(node string) bool {
	others := 0
	for _, m := range a.cluster.Members() {
		if m.Self || m.Node == node || m.State != "alive" {
			continue
		}
		if m.Known < m.Seq {
			return false
		}
		others++
	}
	return others > 0
}

// ready tells the predecessor that this agent serves; it stops accepting
// and drains. Then this agent serves the control socket for its successor
// (nil when it does not). Failures are logged, not returned: this agent
// serves already, and stopping it would lose what the hand-over saves.
func (a *Agent) ready(ctx context.Context, cfg *config.Config, s *succession) *handover.Server {
	if names := a.lb.CloseUnused(); len(names) > 0 {
		a.log.Info("agent: the new config has no listener for some of the sockets taken over; closed them", "listeners", names)
	}
	if s.pred != nil {
		a.lb.StartAccepting()
		err := s.pred.Ready(ctx)
		s.pred.Close()
		s.pred = nil
		if err != nil {
			// Both agents may serve now; the old one's sockets are ours too.
			a.log.Warn("agent: the previous agent did not confirm the takeover; it may go on serving beside this one", "err", err)
		} else {
			a.log.Info("agent: took over; the previous agent drains and exits")
		}
	}
	if !s.serve {
		return nil
	}
	srv, err := handover.Listen(cfg.Upgrade.Socket, identity(cfg), a.log)
	if err != nil {
		a.log.Warn("agent: cannot serve upgrade.socket; a new agent will not be able to take over from this one", "err", err)
		return nil
	}
	return srv
}

// leaveFleet leaves the fleet for a successor that binds the gossip port.
func (a *Agent) leaveFleet() {
	if a.cluster == nil || a.leftFleet {
		return
	}
	a.leftFleet = true
	// A cluster that has left knows no live member, so no target: routing
	// keeps what it knew.
	a.lastRemote = a.cluster.Targets()
	a.log.Info("agent: leaving the fleet for the agent taking over; routing keeps the fleet's last targets")
	// Close frees the port even when the goodbye fails: the successor can
	// bind it either way.
	if err := a.cluster.Close(5 * time.Second); err != nil {
		a.log.Warn("agent: leaving the fleet", "err", err)
	}
}

// upgradeHandler is the running agent's side of a hand-over; the control
// loop does what touches its state.
type upgradeHandler struct {
	a *Agent
	// adminLn is the admin API's listener, handed over with the others.
	adminLn   net.Listener
	adminAddr string
	// releases asks the control loop to leave the fleet; handedOver is
	// closed when a successor serves; stopping when the control loop ends.
	releases   chan chan error
	handedOver chan struct{}
	stopping   <-chan struct{}
}

// Sockets implements handover.Handler.
func (h *upgradeHandler) Sockets() ([]handover.Socket, error) {
	socks, err := h.a.lb.Sockets()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	out := make([]handover.Socket, 0, len(socks)+1)
	for _, s := range socks {
		out = append(out, handover.Socket{Entry: handover.Entry{Name: s.Listener, Address: s.Address, Network: s.Network}, File: s.File})
	}
	admin, err := h.adminLn.(*net.TCPListener).File()
	if err != nil {
		for _, s := range out {
			s.File.Close()
		}
		return nil, fmt.Errorf("agent: admin socket for a successor: %w", err)
	}
	return append(out, handover.Socket{Entry: handover.Entry{Name: adminSocket, Address: h.adminAddr, Network: handover.NetworkTCP}, File: admin}), nil
}

// Release implements handover.Handler.
func (h *upgradeHandler) Release() error {
	done := make(chan error, 1)
	select {
	case h.releases <- done:
		return <-done
	case <-h.stopping:
		return errors.New("agent: this agent is shutting down; start the new one again once it has exited")
	}
}

// Ready implements handover.Handler.
func (h *upgradeHandler) Ready() error {
	close(h.handedOver)
	return nil
}
