package gossip

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func listenTransport(t *testing.T, bind string) *transport {
	t.Helper()
	tr, err := newTransport(bind, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown() })
	return tr
}

func receive(t *testing.T, tr *transport) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet arrived within 5 s")
		return nil
	}
}

// Every packet arrives whole, from its sender, in a buffer of its own: the
// read buffer is reused, so a packet that shared it would change under
// memberlist when the next one is read.
func TestTransportPackets(t *testing.T) {
	a, b := listenTransport(t, "127.0.0.1:0"), listenTransport(t, "127.0.0.1:0")
	to := b.udp.LocalAddr().String()
	sizes := []int{1, 100, 1400, 60000}
	for i, size := range sizes {
		if _, err := a.WriteToAddress(bytes.Repeat([]byte{byte('a' + i)}, size), memberlist.Address{Addr: to}); err != nil {
			t.Fatal(err)
		}
	}
	var got []*memberlist.Packet
	for range sizes {
		got = append(got, receive(t, b))
	}
	for i, p := range got {
		if want := bytes.Repeat([]byte{byte('a' + i)}, sizes[i]); !bytes.Equal(p.Buf, want) {
			t.Errorf("packet %d: %d bytes starting %q, want %d bytes of %q", i, len(p.Buf), p.Buf[:min(len(p.Buf), 8)], sizes[i], want[:1])
		}
		if cap(p.Buf) != sizes[i] {
			t.Errorf("packet %d of %d bytes holds a buffer of %d", i, sizes[i], cap(p.Buf))
		}
		if p.From.String() != a.udp.LocalAddr().String() || p.Timestamp.IsZero() {
			t.Errorf("packet %d from %v at %v, want from %v with a time", i, p.From, p.Timestamp, a.udp.LocalAddr())
		}
	}
}

// A stream dialled to the transport's address comes out of StreamCh; UDP and
// TCP share the port picked for port 0.
func TestTransportStreams(t *testing.T) {
	tr := listenTransport(t, "127.0.0.1:0")
	if tcp, udp := tr.tcp.Addr().(*net.TCPAddr).Port, tr.udp.LocalAddr().(*net.UDPAddr).Port; tcp != udp {
		t.Fatalf("TCP port %d, UDP port %d: want one port", tcp, udp)
	}
	conn, err := tr.DialAddressTimeout(memberlist.Address{Addr: tr.tcp.Addr().String()}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello"))
	select {
	case in := <-tr.StreamCh():
		defer in.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("read %q, %v from the accepted stream", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no stream came out within 5 s")
	}
}

func TestTransportAdvertise(t *testing.T) {
	specific := listenTransport(t, "127.0.0.1:0")
	port := specific.tcp.Addr().(*net.TCPAddr).Port
	every := listenTransport(t, ":0")
	tests := []struct {
		name    string
		tr      *transport
		ip      string
		port    int
		want    string
		wantErr bool
	}{
		{"the bound address and port", specific, "", 0, "127.0.0.1:" + strconv.Itoa(port), false},
		{"the given address and port", specific, "10.0.0.5", 7946, "10.0.0.5:7946", false},
		{"the given address, the bound port", specific, "10.0.0.5", 0, "10.0.0.5:" + strconv.Itoa(port), false},
		{"IPv4 in IPv6 form", specific, "::ffff:10.0.0.5", 7946, "10.0.0.5:7946", false},
		{"bound to every address, none given", every, "", 0, "", true},
		{"not an IP", specific, "host-a", 7946, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, port, err := tt.tr.FinalAdvertiseAddr(tt.ip, tt.port)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("FinalAdvertiseAddr(%q, %d) = %v, %d; want an error", tt.ip, tt.port, ip, port)
				}
				return
			}
			if err != nil || net.JoinHostPort(ip.String(), strconv.Itoa(port)) != tt.want {
				t.Fatalf("FinalAdvertiseAddr(%q, %d) = %v, %d, %v; want %s", tt.ip, tt.port, ip, port, err, tt.want)
			}
		})
	}
}

// Shutdown closes both sockets and ends their goroutines.
func TestTransportShutdown(t *testing.T) {
	tr, err := newTransport("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- tr.Shutdown() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return within 5 s")
	}
	if _, err := tr.WriteToAddress([]byte("x"), memberlist.Address{Addr: "127.0.0.1:9"}); err == nil {
		t.Error("a closed transport still sends")
	}
}
