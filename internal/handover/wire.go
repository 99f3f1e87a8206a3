// Package handover passes a running agent's listening sockets to the agent
// that replaces it, as HAProxy's seamless reload does (`expose-fd listeners`
// and `-x`): the old agent serves a unix control socket, the new one connects
// at start, receives the sockets' descriptors (SCM_RIGHTS), serves on them,
// and says when it is ready; the old one then stops accepting and drains. The
// kernel's sockets, and the connections waiting in their accept queues, never
// close: both processes hold them during the hand-over.
//
// The conversation, one SOCK_SEQPACKET message each (so a message and its
// descriptors arrive together, whole or not at all):
//
//	new -> old  hello     (the new agent's node name and admin API address)
//	old -> new  sockets   (a list of name, address, network; one descriptor each)
//	new -> old  release   (optional: free what cannot be shared, the gossip port)
//	old -> new  released
//	new -> old  ready     (the new agent serves)
//	old -> new  done      (the old one stopped accepting and gave up the control socket)
//
// Either side may answer a message with an error message instead, and closes.
package handover

import (
	"errors"
	"fmt"
	"strconv"
)

// Message types.
const (
	msgHello    byte = 1
	msgSockets  byte = 2
	msgRelease  byte = 3
	msgReleased byte = 4
	msgReady    byte = 5
	msgDone     byte = 6
	msgError    byte = 7
)

// magic opens every message: a peer that speaks another protocol, or another
// version of this one, is told so instead of being misread.
var magic = [4]byte{'B', 'H', 'O', '1'}

const (
	headerLen = len(magic) + 1
	// MaxSockets bounds the sockets of one hand-over: below Linux's
	// SCM_MAX_FD (253 descriptors in one message).
	MaxSockets = 200
	// maxField bounds a name, an address or an error text.
	maxField = 255
	// maxMessage is the largest valid message: a header, a count and
	// MaxSockets entries of three full fields.
	maxMessage = headerLen + 1 + MaxSockets*3*(1+maxField)
)

// Networks of a Socket.
const (
	NetworkTCP = "tcp"
	NetworkUDP = "udp"
)

// Entry names one socket of a hand-over: the listener it belongs to, the
// address its config gives (not the bound one: port 0 stays 0, so the new
// agent finds it by its own config), and tcp or udp.
type Entry struct {
	Name    string
	Address string
	Network string
}

// message is one decoded message. entries are set for msgSockets, text for
// msgError, who for msgHello.
type message struct {
	kind    byte
	entries []Entry
	text    string
	who     Identity
}

// Identity is what makes two agents the same agent of a host, one the
// successor of the other: their node name and their admin API's address.
// Agents that differ in either (several nodes on one machine, as in tests)
// leave each other alone.
type Identity struct {
	Node  string
	Admin string
}

func (id Identity) check() error {
	if id.Node == "" || len(id.Node) > maxField || !allIn(id.Node, nameByte) {
		return fmt.Errorf("handover: node name %q: use 1 to %d letters, digits, '.', '_' or '-'", id.Node, maxField)
	}
	return checkAddress("the admin API", id.Admin)
}

// encode renders m. It fails on what decode would refuse, so a peer never
// receives a message it must reject.
func encode(m message) ([]byte, error) {
	b := append(magic[:len(magic):len(magic)], m.kind)
	switch m.kind {
	case msgRelease, msgReleased, msgReady, msgDone:
		return b, nil
	case msgHello:
		if err := m.who.check(); err != nil {
			return nil, err
		}
		b = append(append(b, byte(len(m.who.Node))), m.who.Node...)
		return append(append(b, byte(len(m.who.Admin))), m.who.Admin...), nil
	case msgError:
		if err := checkText(m.text); err != nil {
			return nil, err
		}
		return append(append(b, byte(len(m.text))), m.text...), nil
	case msgSockets:
		if len(m.entries) > MaxSockets {
			return nil, fmt.Errorf("handover: %d sockets: at most %d go in one hand-over", len(m.entries), MaxSockets)
		}
		b = append(b, byte(len(m.entries)))
		for _, e := range m.entries {
			if err := e.check(); err != nil {
				return nil, err
			}
			for _, f := range [...]string{e.Name, e.Address, e.Network} {
				b = append(append(b, byte(len(f))), f...)
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("handover: unknown message type %d", m.kind)
}

var (
	errShort    = errors.New("handover: message cut short")
	errTrailing = errors.New("handover: bytes after the end of the message")
)

// decode parses one whole message strictly: the magic, a known type, fields
// within their bounds and alphabets, and nothing after its end.
func decode(b []byte) (message, error) {
	if len(b) < headerLen {
		return message{}, errShort
	}
	if [4]byte(b[:4]) != magic {
		return message{}, errors.New("handover: not a berth hand-over message (or another version of the protocol)")
	}
	m := message{kind: b[4]}
	r := reader{b: b[headerLen:]}
	switch m.kind {
	case msgRelease, msgReleased, msgReady, msgDone:
	case msgHello:
		m.who = Identity{Node: r.field(), Admin: r.field()}
		if r.err == nil {
			r.err = m.who.check()
		}
	case msgError:
		m.text = r.field()
		if r.err == nil {
			r.err = checkText(m.text)
		}
	case msgSockets:
		n := r.byte()
		if n > MaxSockets {
			return message{}, fmt.Errorf("handover: %d sockets: at most %d go in one hand-over", n, MaxSockets)
		}
		m.entries = make([]Entry, 0, n)
		for range n {
			e := Entry{Name: r.field(), Address: r.field(), Network: r.field()}
			if r.err != nil {
				break
			}
			if err := e.check(); err != nil {
				return message{}, err
			}
			m.entries = append(m.entries, e)
		}
	default:
		return message{}, fmt.Errorf("handover: unknown message type %d", m.kind)
	}
	if r.err != nil {
		return message{}, r.err
	}
	if len(r.b) > 0 {
		return message{}, errTrailing
	}
	return m, nil
}

// reader reads length-prefixed fields; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() int {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return int(c)
}

func (r *reader) field() string {
	n := r.byte()
	if r.err != nil {
		return ""
	}
	if len(r.b) < n {
		r.err = errShort
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// check accepts the names of berth's config (letters, digits, '.', '_', '-'),
// addresses of the form host:port, and the two networks.
func (e Entry) check() error {
	if e.Name == "" || len(e.Name) > maxField || !allIn(e.Name, nameByte) {
		return fmt.Errorf("handover: socket name %q: use 1 to %d letters, digits, '.', '_' or '-'", e.Name, maxField)
	}
	if err := checkAddress("socket "+e.Name, e.Address); err != nil {
		return err
	}
	if e.Network != NetworkTCP && e.Network != NetworkUDP {
		return fmt.Errorf("handover: socket %s: network %q: use %s or %s", e.Name, e.Network, NetworkTCP, NetworkUDP)
	}
	return nil
}

// checkAddress accepts host:port, what of is told in the error.
func checkAddress(of, addr string) error {
	port, ok := portOf(addr)
	if len(addr) > maxField || !allIn(addr, addressByte) || !ok {
		return fmt.Errorf("handover: %s: address %q is not host:port", of, addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("handover: %s: port %q: use 0..65535", of, port)
	}
	return nil
}

// portOf returns what follows the last ':' of a host:port.
func portOf(addr string) (string, bool) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:], true
		}
	}
	return "", false
}

func checkText(s string) error {
	if len(s) > maxField {
		return fmt.Errorf("handover: error text of %d bytes: at most %d", len(s), maxField)
	}
	if !allIn(s, printableByte) {
		return errors.New("handover: error text has bytes other than printable ASCII")
	}
	return nil
}

func allIn(s string, ok func(byte) bool) bool {
	for i := range len(s) {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// addressByte admits hostnames, IPv4 and bracketed IPv6 with a zone.
func addressByte(c byte) bool {
	return nameByte(c) || c == ':' || c == '[' || c == ']' || c == '%'
}

func printableByte(c byte) bool { return ' ' <= c && c <= '~' }
