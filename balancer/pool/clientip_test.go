package pool

import (
	"net"
	"testing"
)

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr net.Addr
		want string
	}{
		{"ipv4", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}, "192.0.2.1"},
		{"ipv4-mapped ipv6 as ipv4", &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 5000}, "192.0.2.1"},
		{"ipv6", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5000}, "2001:db8::1"},
		{"not tcp: the address whole", &net.UnixAddr{Name: "/run/berth.sock", Net: "unix"}, "/run/berth.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(ClientIP(tc.addr)); got != tc.want {
				t.Errorf("ClientIP(%v) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}
