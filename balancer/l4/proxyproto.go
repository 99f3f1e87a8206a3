package l4

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// ProxyV2Signature opens every proxy protocol v2 header.
const ProxyV2Signature = "\r\n\r\n\x00\r\nQUIT\n"

// AppendProxyHeaderV2 appends a proxy protocol v2 header (PROXY command) that
// tells the target the client's address (src) and the listener's (dst):
// TCP or UDP over IPv4 when both are IPv4, else over IPv6.
func AppendProxyHeaderV2(b []byte, src, dst net.Addr) []byte {
	s, transport := AddrPort(src)
	d, _ := AddrPort(dst)
	b = append(b, ProxyV2Signature...)
	b = append(b, 0x21) // version 2, PROXY
	if s.Addr().Is4() && d.Addr().Is4() {
		b = append(b, 0x10|transport, 0, 12)
		s4, d4 := s.Addr().As4(), d.Addr().As4()
		b = append(append(b, s4[:]...), d4[:]...)
	} else {
		b = append(b, 0x20|transport, 0, 36)
		s16, d16 := s.Addr().As16(), d.Addr().As16()
		b = append(append(b, s16[:]...), d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

// AddrPort returns the address (IPv4-mapped IPv6 unmapped) and the proxy
// protocol's transport nibble: 1 stream, 2 datagram.
func AddrPort(a net.Addr) (netip.AddrPort, byte) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), 1
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), 2
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), 0), 1
}
