// Package tcppair gives tests the two ends of a real TCP connection on
// loopback: what the code under test reads, writes, waits on or parks is a
// socket, not a pipe.
package tcppair

import (
	"net"
	"testing"
)

// Loopback connects a client to a listener on 127.0.0.1 and returns both
// ends; both are closed when the test ends.
func Loopback(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}
