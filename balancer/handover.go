package balancer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

// Socket is a listening socket shared with another process: handed to a
// successor (Sockets) or received from a predecessor (Inherit). Listener
// and Address are the listener's name and configured address, Network is
// "tcp" or "udp". Whoever holds a Socket owns File and closes it.
type Socket struct {
	Listener string
	Address  string
	Network  string
	File     *os.File
}

// inheritedSockets are the sockets received from a predecessor that no
// listener has taken yet, by listener name, address and network; and, until
// StartAccepting, the listeners opened but not yet accepting.
type inheritedSockets struct {
	mu    sync.Mutex
	files map[[3]string]*os.File
	// holding: Inherit was called and StartAccepting not yet.
	holding bool
	held    []*listener
}

// start starts the accept loops of opened listeners, or holds them.
func (in *inheritedSockets) start(opened []*listener) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.holding {
		in.held = append(in.held, opened...)
		return
	}
	for _, l := range opened {
		l.startAccepting()
	}
}

// StartAccepting starts the listeners Apply opened since Inherit: until
// then they do not accept, so connections go to the predecessor, which
// routes with complete state, while this balancer's routing is not yet
// complete (the fleet's targets still arriving). Connections meanwhile
// queue in the shared sockets, none is refused.
func (b *Balancer) StartAccepting() {
	in := &b.inherited
	in.mu.Lock()
	held := in.held
	in.holding, in.held = false, nil
	in.mu.Unlock()
	in.start(held)
}

// Inherit gives the balancer sockets to serve on instead of binding: Apply
// opens a listener on the one of its name, address and network, and binds
// only the listeners that have none. The listeners Apply opens accept only
// after StartAccepting; then they take, too, the connections waiting in the
// queues when the predecessor stops.
func (b *Balancer) Inherit(socks []Socket) {
	in := &b.inherited
	in.mu.Lock()
	defer in.mu.Unlock()
	in.holding = true
	if in.files == nil {
		in.files = map[[3]string]*os.File{}
	}
	for _, s := range socks {
		key := [3]string{s.Listener, s.Address, s.Network}
		if old := in.files[key]; old != nil {
			old.Close()
		}
		in.files[key] = s.File
	}
}

// CloseUnused closes the inherited sockets that no listener took (the new
// config dropped or moved those listeners) and returns their listeners'
// names. The predecessor's own copies close when it exits.
func (b *Balancer) CloseUnused() []string {
	in := &b.inherited
	in.mu.Lock()
	defer in.mu.Unlock()
	var names []string
	for key, f := range in.files {
		f.Close()
		names = append(names, key[0])
	}
	in.files = nil
	return names
}

// take returns the inherited socket of a listener, or nil.
func (in *inheritedSockets) take(name, address, network string) *os.File {
	in.mu.Lock()
	defer in.mu.Unlock()
	key := [3]string{name, address, network}
	f := in.files[key]
	delete(in.files, key)
	return f
}

// listenTCP serves a TCP listener on its inherited socket, else binds one.
func (b *Balancer) listenTCP(name, address string) (net.Listener, error) {
	return listenOn(&b.inherited, name, address, "tcp", net.Listen, net.FileListener)
}

// listenUDP is listenTCP for a UDP listener.
func (b *Balancer) listenUDP(name, address string) (net.PacketConn, error) {
	return listenOn(&b.inherited, name, address, "udp", net.ListenPacket, net.FilePacketConn)
}

// listenOn opens a listener's socket from its inherited descriptor, or binds
// a new one when it inherited none.
func listenOn[S any](in *inheritedSockets, name, address, network string,
	bind func(network, address string) (S, error), fromFile func(*os.File) (S, error)) (S, error) {
	f := in.take(name, address, network)
	if f == nil {
		return bind(network, address)
	}
	defer f.Close() // fromFile made its own copy
	s, err := fromFile(f)
	if err != nil {
		var none S
		return none, fmt.Errorf("inherited socket: %w", err)
	}
	return s, nil
}

// Sockets returns a copy of every listener's socket, for a successor to
// serve on. The copies keep the kernel's sockets, and the connections in
// their accept queues, open when this balancer shuts down: Shutdown closes
// only its own descriptors.
func (b *Balancer) Sockets() ([]Socket, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("balancer: sockets asked after shutdown")
	}
	out := make([]Socket, 0, len(b.listeners))
	fail := func(err error) ([]Socket, error) {
		for _, s := range out {
			s.File.Close()
		}
		return nil, err
	}
	for _, l := range b.listeners {
		var f *os.File
		var err error
		network := "tcp"
		if l.udp != nil {
			network = "udp"
			f, err = l.udp.File()
		} else {
			f, err = fileOf(l.ln)
		}
		if err != nil {
			return fail(fmt.Errorf("balancer: listener %s: socket for a successor: %w", l.name, err))
		}
		out = append(out, Socket{Listener: l.name, Address: l.address, Network: network, File: f})
	}
	return out, nil
}

// fileOf duplicates a listener's descriptor.
func fileOf(ln net.Listener) (*os.File, error) {
	fl, ok := ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("%T has no descriptor", ln)
	}
	return fl.File()
}
