package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport carries memberlist's packets over UDP and its streams over TCP,
// both on the bind address and port, as memberlist's NetTransport does, but
// it reads every packet into one reused buffer and hands memberlist a copy of
// the packet's own size. NetTransport gives each packet a fresh 64 KiB
// buffer: with the suspicion pings (suspect.go) an agent of a fleet of 50
// receives about 100 pings and acks a second besides gossip, 6 MiB a second
// of garbage for packets of about 100 bytes, and 50 agents in one process
// (the benchmarks) 300 MiB a second, whose collection delayed everything
// else there.
type transport struct {
	udp     *net.UDPConn
	tcp     *net.TCPListener
	packets chan *memberlist.Packet
	streams chan net.Conn
	log     *slog.Logger
	closing atomic.Bool
	wg      sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

const (
	// maxPacket is the largest UDP payload: no packet is cut short.
	maxPacket = 65535
	// udpReadBuffer is the socket's receive buffer asked for (memberlist's
	// size), so that a burst of packets waits in the kernel, not dropped.
	udpReadBuffer = 2 << 20
)

// newTransport listens on bind ("ip:port", ":port" for every address; port
// 0 picks one, the same for UDP and TCP).
func newTransport(bind string, log *slog.Logger) (*transport, error) {
	addr, err := net.ResolveTCPAddr("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("gossip: cluster.bind %q: %w; use ip:port", bind, err)
	}
	tcp, err := net.ListenTCP("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on %s/tcp: %w", bind, err)
	}
	bound := tcp.Addr().(*net.TCPAddr)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: bound.IP, Port: bound.Port, Zone: bound.Zone})
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("gossip: listen on %s/udp: %w", bound, err)
	}
	// The largest buffer the system grants, up to udpReadBuffer.
	for size := udpReadBuffer; size > 0 && udp.SetReadBuffer(size) != nil; size /= 2 {
	}
	t := &transport{udp: udp, tcp: tcp, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), log: log}
	t.wg.Add(2)
	go t.readPackets()
	go t.acceptStreams()
	return t, nil
}

// FinalAdvertiseAddr implements memberlist.Transport: ip when given, else the
// bound address, which must then be a specific one; port 0 is the bound port.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	bound := t.tcp.Addr().(*net.TCPAddr)
	if port == 0 {
		port = bound.Port
	}
	if ip == "" {
		if bound.IP.IsUnspecified() {
			return nil, 0, fmt.Errorf("gossip: cluster.bind %s is every address: set node.advertise, the IP the other hosts reach this one at", bound)
		}
		return bound.IP, port, nil
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, 0, fmt.Errorf("gossip: advertise address %q: %w", ip, err)
	}
	return addr.Unmap().AsSlice(), port, nil
}

// WriteTo implements memberlist.Transport.
func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	// memberlist's addresses are ip:port, but for names given to join.
	to, err := netip.ParseAddrPort(a.Addr)
	if err != nil {
		resolved, err := net.ResolveUDPAddr("udp", a.Addr)
		if err != nil {
			return time.Time{}, fmt.Errorf("gossip: send to %q: %w", a.Addr, err)
		}
		to = resolved.AddrPort()
	}
	_, err = t.udp.WriteToUDPAddrPort(b, netip.AddrPortFrom(to.Addr().Unmap(), to.Port()))
	return time.Now(), err
}

// PacketCh implements memberlist.Transport.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport: it closes both sockets and waits
// for their goroutines.
func (t *transport) Shutdown() error {
	t.closing.Store(true)
	err := errors.Join(t.tcp.Close(), t.udp.Close())
	t.wg.Wait()
	return err
}

func (t *transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		received := time.Now()
		if err != nil {
			if t.closing.Load() {
				return
			}
			t.log.Warn("gossip: reading a UDP packet failed", "err", err)
			continue
		}
		if n == 0 {
			continue
		}
		packet := make([]byte, n)
		copy(packet, buf)
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		t.packets <- &memberlist.Packet{Buf: packet, From: net.UDPAddrFromAddrPort(from), Timestamp: received}
	}
}

func (t *transport) acceptStreams() {
	defer t.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closing.Load() {
				return
			}
			// Out of file descriptors, say: wait, as memberlist does, rather than spin.
			t.log.Warn("gossip: accepting a TCP connection failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		t.streams <- conn
	}
}
