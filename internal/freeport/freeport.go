// Package freeport finds addresses with a free port for tests, on loopback.
// A port free now may be taken before the test binds it; the tests that use
// these bind at once.
package freeport

import (
	"net"
	"testing"
)

// TCP returns "ip:port" with a TCP port free on ip (127.0.0.1 when empty).
func TCP(t testing.TB, ip ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host(ip)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// UDP returns "ip:port" with a UDP port free on ip (127.0.0.1 when empty).
func UDP(t testing.TB, ip ...string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", host(ip)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

func host(ip []string) string {
	if len(ip) > 0 && ip[0] != "" {
		return ip[0]
	}
	return "127.0.0.1"
}
