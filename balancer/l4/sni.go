package l4

import (
	"errors"
	"io"
	"net"
	"strings"
	"time"
)

// maxClientHelloBytes bounds what a TLS passthrough listener reads before it
// knows where to send a connection: the records holding the ClientHello.
const maxClientHelloBytes = 64 << 10

var errNotClientHello = errors.New("not a TLS ClientHello")

// readClientHello reads the TLS records that carry the client's ClientHello,
// without decrypting anything (a ClientHello is plain text), and returns
// them, to be replayed to the target, with the server name the client asked
// for ("" when it sent none). It reads whole records only, so nothing after
// the ClientHello is consumed.
func readClientHello(conn net.Conn, deadline time.Time) (raw []byte, sni string, err error) {
	conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	raw = make([]byte, 0, 2048)
	var msg []byte // the handshake messages, reassembled from the records
	for {
		if raw, err = readN(conn, raw, 5); err != nil {
			return nil, "", err
		}
		header := raw[len(raw)-5:]
		length := int(header[3])<<8 | int(header[4])
		if header[0] != 22 || header[1] != 3 || length == 0 || len(raw)+length > maxClientHelloBytes {
			return nil, "", errNotClientHello
		}
		if raw, err = readN(conn, raw, length); err != nil {
			return nil, "", err
		}
		msg = append(msg, raw[len(raw)-length:]...)
		if len(msg) < 4 {
			continue
		}
		if msg[0] != 1 {
			return nil, "", errNotClientHello
		}
		need := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
		if need > maxClientHelloBytes {
			return nil, "", errNotClientHello
		}
		if len(msg) >= need {
			sni, err = serverName(msg[4:need])
			return raw, sni, err
		}
	}
}

// readN appends exactly n bytes read from r to b.
func readN(r io.Reader, b []byte, n int) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, n)...)
	_, err := io.ReadFull(r, b[start:])
	return b, err
}

// serverName finds the host_name of the server_name extension (RFC 6066) in
// the body of a ClientHello, lower-cased.
func serverName(hello []byte) (string, error) {
	p := parser{b: hello}
	p.skip(2 + 32) // client_version, random
	p.skip(int(p.u8()))
	p.skip(int(p.u16()))
	p.skip(int(p.u8()))
	if p.bad {
		return "", errNotClientHello
	}
	if len(p.b) == 0 {
		return "", nil // no extensions
	}
	exts := parser{b: p.bytes(int(p.u16()))}
	for !exts.bad && len(exts.b) > 0 {
		typ := exts.u16()
		body := parser{b: exts.bytes(int(exts.u16()))}
		if typ != 0 {
			continue
		}
		names := parser{b: body.bytes(int(body.u16()))}
		for !names.bad && len(names.b) > 0 {
			kind := names.u8()
			name := names.bytes(int(names.u16()))
			if kind == 0 && !names.bad {
				return strings.ToLower(string(name)), nil
			}
		}
		break
	}
	if p.bad || exts.bad {
		return "", errNotClientHello
	}
	return "", nil
}

// parser reads big-endian fields; a read past the end sets bad and returns zeros.
type parser struct {
	b   []byte
	bad bool
}

func (p *parser) bytes(n int) []byte {
	if p.bad || n > len(p.b) {
		p.bad = true
		return nil
	}
	out := p.b[:n]
	p.b = p.b[n:]
	return out
}

func (p *parser) skip(n int) { p.bytes(n) }

func (p *parser) u8() uint8 {
	b := p.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (p *parser) u16() uint16 {
	b := p.bytes(2)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}
