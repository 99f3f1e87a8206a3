package handover

import (
	"bytes"
	"strings"
	"testing"
)

func TestMessagesRoundTrip(t *testing.T) {
	for _, m := range []message{
		{kind: msgHello, who: Identity{"host-a.example", "127.0.0.1:9900"}},
		{kind: msgRelease},
		{kind: msgReleased},
		{kind: msgReady},
		{kind: msgDone},
		{kind: msgError, text: "handover: no"},
		{kind: msgSockets, entries: []Entry{}},
		{kind: msgSockets, entries: []Entry{{"web", "0.0.0.0:80", "tcp"}, {"dns", "[::1%lo]:53", "udp"}, {"admin", "localhost:0", "tcp"}}},
	} {
		b, err := encode(m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		got, err := decode(b)
		if err != nil {
			t.Fatalf("decode %q: %v", b, err)
		}
		if got.kind != m.kind || got.text != m.text || got.who != m.who || len(got.entries) != len(m.entries) {
			t.Fatalf("decode(encode(%+v)) = %+v", m, got)
		}
		for i := range m.entries {
			if got.entries[i] != m.entries[i] {
				t.Fatalf("entry %d: %+v, want %+v", i, got.entries[i], m.entries[i])
			}
		}
	}
}

func sockets(fields ...string) []byte {
	b := append([]byte("BHO1"), msgSockets, byte(len(fields)/3))
	for _, f := range fields {
		b = append(append(b, byte(len(f))), f...)
	}
	return b
}

func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "cut short"},
		{"header only magic", []byte("BHO1"), "cut short"},
		{"other protocol", []byte("GET / HTTP/1.1\r\n"), "not a berth hand-over message"},
		{"other version", []byte("BHO2\x01"), "not a berth hand-over message"},
		{"unknown type", []byte("BHO1\x09"), "unknown message type 9"},
		{"type zero", []byte("BHO1\x00"), "unknown message type 0"},
		{"trailing after hello", []byte("BHO1\x01\x01a\x03a:1x"), "bytes after the end"},
		{"hello without a node", []byte("BHO1\x01\x00\x03a:1"), "node name \"\""},
		{"hello with a bad node", []byte("BHO1\x01\x03a b\x03a:1"), "node name \"a b\""},
		{"hello without an admin address", []byte("BHO1\x01\x01a"), "cut short"},
		{"hello with a bad admin address", []byte("BHO1\x01\x01a\x01a"), "the admin API: address \"a\""},
		{"count without entries", []byte("BHO1\x02\x01"), "cut short"},
		{"field longer than the message", []byte("BHO1\x02\x01\x09web"), "cut short"},
		{"too many sockets", []byte("BHO1\x02\xc9"), "at most 200"},
		{"empty name", sockets("", "0.0.0.0:80", "tcp"), "socket name"},
		{"name with a slash", sockets("we/b", "0.0.0.0:80", "tcp"), "socket name"},
		{"name with NUL", sockets("web\x00", "0.0.0.0:80", "tcp"), "socket name"},
		{"address without port", sockets("web", "0.0.0.0", "tcp"), "not host:port"},
		{"address with a space", sockets("web", "0.0.0.0 :80", "tcp"), "not host:port"},
		{"port too large", sockets("web", "0.0.0.0:65536", "tcp"), "port \"65536\""},
		{"port not a number", sockets("web", "0.0.0.0:http", "tcp"), "port \"http\""},
		{"empty port", sockets("web", "0.0.0.0:", "tcp"), "port \"\""},
		{"unix network", sockets("web", "0.0.0.0:80", "unix"), "network \"unix\""},
		{"entries then junk", append(sockets("web", "0.0.0.0:80", "tcp"), 'x'), "bytes after the end"},
		{"error text with a newline", []byte("BHO1\x07\x02a\n"), "printable ASCII"},
		{"error text cut short", []byte("BHO1\x07\x05abc"), "cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode(%q) = %v, want an error with %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestEncodeRefusesWhatDecodeWould(t *testing.T) {
	for _, m := range []message{
		{kind: 42},
		{kind: msgError, text: strings.Repeat("x", 256)},
		{kind: msgSockets, entries: []Entry{{"web", "x", "tcp"}}},
		{kind: msgSockets, entries: make([]Entry, MaxSockets+1)},
	} {
		if b, err := encode(m); err == nil {
			t.Errorf("encode(%+v) = %q, want an error", m, b)
		}
	}
}

// FuzzDecode: no input panics the decoder, and what it accepts is exactly
// what encode writes for the result.
func FuzzDecode(f *testing.F) {
	for _, seed := range [][]byte{
		[]byte("BHO1\x01\x06host-a\x0e127.0.0.1:9900"),
		[]byte("BHO1\x05"),
		[]byte("BHO1\x07\x02no"),
		sockets("web", "0.0.0.0:80", "tcp", "dns", "[::]:53", "udp"),
		sockets("web", "0.0.0.0:80", "unix"),
		[]byte("BHO1\x02\xff"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := decode(in)
		if err != nil {
			return
		}
		out, err := encode(m)
		if err != nil {
			t.Fatalf("decode accepted %q, encode refuses its result: %v", in, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("decode(%q) re-encodes as %q", in, out)
		}
	})
}
