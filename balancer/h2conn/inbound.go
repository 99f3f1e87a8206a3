// Package h2conn is the plumbing of an HTTP/2 client connection around
// berth's HTTP/2 server (balancer/h2server), none of which knows routes or
// targets: Inbound filters the frames the client sends (it merges repeated
// settings, marks connection-specific fields malformed, and cuts off a
// rapid reset); Downgradable decides whether a request can be forwarded as
// HTTP/1.1. The HTTP/2 front (balancer/httpfront/h2front) wires them up.
//
// Everything here runs on every frame or write of a connection: it must not
// allocate per frame, block other than on the connection itself, or import
// another balancer package but the codec's limits (balancer/http1).
package h2conn

import (
	"encoding/binary"
	"errors"
	"io"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/balancer/http1"
)

// Preface is what an HTTP/2 client sends first (RFC 9113 3.4).
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Inbound sits between an HTTP/2 client and berth's server (whose frames
// x/net's Framer reads); every byte passes unchanged but two kinds of
// header and settings block, DATA without a copy. It was written for
// x/net's server, whose answers to these RFC 9113 forbids (h2spec 6.5.3 and
// 8.1.2.2), and keeps the server's reading simple:
//
//   - A SETTINGS frame that names a setting twice is processed in order
//     (6.5.3): the frame reaches the server with each setting once, with the
//     value processing all in order leaves: the last, the smallest for
//     SETTINGS_HEADER_TABLE_SIZE (the encoder then signals it, RFC 7541 4.2),
//     or an invalid one if there is one, which the server refuses.
//   - A request with a connection-specific field (Connection, Keep-Alive,
//     Proxy-Connection, Transfer-Encoding, Upgrade) or a TE other than
//     "trailers" is malformed, a stream error of type PROTOCOL_ERROR (8.2.2).
//     Its header block reaches the server with one more field, a literal not
//     indexed whose name is not lowercase: the Framer resets the stream with
//     PROTOCOL_ERROR, and its HPACK table stays the client's.
//
// Header blocks are decoded beside the server's decoder, so the dynamic
// tables agree; a block it cannot follow (too large, undecodable: the
// server closes the connection for both) ends the inspection and every
// later byte passes.
//
// It also ends the connection of a client that resets most of the streams
// it opens (rapid reset, CVE-2023-44487): the server bounds how many
// handlers run at once, but a stream reset as soon as it opened frees its
// slot at once, so the targets would get a request per stream at the pace
// of the client.
type Inbound struct {
	src     io.Reader
	preface int // preface bytes still to pass
	payload int // bytes of the current frame's payload still to pass
	out     []byte
	sent    int    // of out
	block   []byte // the frames of the header block being gathered
	hdec    *hpack.Decoder
	bad     bool // the block being decoded is malformed
	passAll bool
	err     error
	// streams and resets count the client's HEADERS and RST_STREAM frames.
	streams, resets int
}

// ErrRapidReset ends the connection of a client that resets most of the
// streams it opens.
var ErrRapidReset = errors.New("h2conn: the client reset too many of its streams")

// freeResets is how many RST_STREAM frames a client may send before its
// share of reset streams counts: a client cancels some requests (a page
// left, a deadline passed), an attacker nearly all.
const freeResets = 200

// tooManyResets reports whether a client that sent streams HEADERS and
// resets RST_STREAM frames resets most of its streams: more than 3 in 4.
func tooManyResets(streams, resets int) bool { return resets > freeResets && 4*resets > 3*streams }

// maxInboundBlock bounds a header block gathered before x/net gets it:
// x/net closes the connection of a block twice the header list limit.
const maxInboundBlock = 2*http1.MaxHeadBytes + 4096

// h2FrameHeaderLen is the length of an HTTP/2 frame header.
const h2FrameHeaderLen = 9

// h2Malformed is the field added to a malformed header block: a literal
// without indexing (RFC 7541 6.2.2), new name "Malformed", empty value.
var h2Malformed = []byte("\x00\x09Malformed\x00")

// NewInbound filters the frames read from src, the client connection.
func NewInbound(src io.Reader) *Inbound {
	in := &Inbound{src: src, preface: len(Preface)}
	// The size x/net's server announces and decodes with (its default).
	in.hdec = hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		switch f.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			in.bad = true
		case "te":
			in.bad = in.bad || f.Value != "trailers"
		}
	})
	return in
}

// Read hands x/net the client's frames, corrected.
func (in *Inbound) Read(p []byte) (int, error) {
	for {
		switch {
		case in.sent < len(in.out):
			n := copy(p, in.out[in.sent:])
			if in.sent += n; in.sent == len(in.out) {
				in.out, in.sent = keepSmall(in.out), 0
			}
			return n, nil
		case in.err != nil:
			return 0, in.err
		case in.passAll:
			return in.src.Read(p)
		case in.preface > 0 || in.payload > 0:
			n, err := in.src.Read(p[:min(len(p), in.preface+in.payload)])
			if in.preface > 0 {
				in.preface -= n
			} else {
				in.payload -= n
			}
			return n, err
		}
		in.err = in.next()
	}
}

// next reads the next frame header and decides what goes on to x/net.
func (in *Inbound) next() error {
	start := len(in.block)
	in.block = append(in.block, make([]byte, h2FrameHeaderLen)...)
	hdr := in.block[start:]
	if _, err := io.ReadFull(in.src, hdr); err != nil {
		return err
	}
	length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	typ, flags := http2.FrameType(hdr[3]), http2.Flags(hdr[4])
	gathering := start > 0
	switch typ {
	case http2.FrameHeaders:
		in.streams++
	case http2.FrameRSTStream:
		if in.resets++; tooManyResets(in.streams, in.resets) {
			return ErrRapidReset
		}
	}
	switch {
	case (typ == http2.FrameHeaders && !gathering || typ == http2.FrameContinuation && gathering) &&
		len(in.block)+length <= maxInboundBlock:
		if err := in.readPayload(length); err != nil {
			return err
		}
		if flags.Has(http2.FlagHeadersEndHeaders) {
			in.endBlock()
		}
	case typ == http2.FrameSettings && !gathering && !flags.Has(http2.FlagSettingsAck) && length%6 == 0 && length <= 600:
		if err := in.readPayload(length); err != nil {
			return err
		}
		n := dedupSettings(in.block[h2FrameHeaderLen:])
		in.block[0], in.block[1], in.block[2] = 0, byte(n>>8), byte(n)
		in.out = append(in.out, in.block[:h2FrameHeaderLen+n]...)
		in.block = in.block[:0]
	default: // x/net refuses what is out of order or too large, or it passes
		in.out = append(in.out, in.block...)
		in.block = in.block[:0]
		in.payload = length
		in.passAll = gathering || typ == http2.FrameHeaders || typ == http2.FrameContinuation
	}
	return nil
}

// keepSmall empties b for reuse, or drops it when a large header block
// grew it: an idle connection should not hold it.
func keepSmall(b []byte) []byte {
	if cap(b) > 16<<10 {
		return nil
	}
	return b[:0]
}

func (in *Inbound) readPayload(n int) error {
	start := len(in.block)
	in.block = append(in.block, make([]byte, n)...)
	_, err := io.ReadFull(in.src, in.block[start:])
	return err
}

// endBlock decodes the gathered header block and hands it on, marked when
// it is malformed.
func (in *Inbound) endBlock() {
	in.bad = false
	ok, last := true, 0
	for f := in.block; ok && len(f) >= h2FrameHeaderLen; {
		length := int(f[0])<<16 | int(f[1])<<8 | int(f[2])
		frag := f[h2FrameHeaderLen : h2FrameHeaderLen+length]
		if http2.FrameType(f[3]) == http2.FrameHeaders {
			frag, ok = headersFragment(http2.Flags(f[4]), frag)
		}
		if ok {
			_, err := in.hdec.Write(frag)
			ok = err == nil
		}
		last = len(in.block) - len(f)
		f = f[h2FrameHeaderLen+length:]
	}
	ok = ok && in.hdec.Close() == nil
	in.out = append(in.out, in.block...)
	in.block = keepSmall(in.block)
	switch {
	case !ok:
		in.passAll = true
	case in.bad:
		in.markMalformed(last)
	}
}

// markMalformed adds h2Malformed to the block in out whose last frame
// starts at last: in its own CONTINUATION, so no frame grows past the size
// x/net reads.
func (in *Inbound) markMalformed(last int) {
	in.out[last+4] &^= byte(http2.FlagHeadersEndHeaders)
	var hdr [h2FrameHeaderLen]byte
	hdr[2] = byte(len(h2Malformed))
	hdr[3] = byte(http2.FrameContinuation)
	hdr[4] = byte(http2.FlagContinuationEndHeaders)
	copy(hdr[5:], in.out[last+5:last+9]) // the stream
	in.out = append(append(in.out, hdr[:]...), h2Malformed...)
}

// headersFragment is the header block fragment of a HEADERS frame's
// payload, without its padding and priority.
func headersFragment(flags http2.Flags, p []byte) ([]byte, bool) {
	pad := 0
	if flags.Has(http2.FlagHeadersPadded) {
		if len(p) == 0 {
			return nil, false
		}
		pad, p = int(p[0]), p[1:]
	}
	if flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return nil, false
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, false
	}
	return p[:len(p)-pad], true
}

// dedupSettings rewrites a SETTINGS payload in place so that each setting
// appears once, with the value processing every entry in order leaves, and
// returns its new length.
func dedupSettings(p []byte) int {
	n := len(p) / 6
	kept := 0
	for i := 0; i < n; i++ {
		s := http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(p[i*6:])), Val: binary.BigEndian.Uint32(p[i*6+2:])}
		j := 0
		for j < kept && http2.SettingID(binary.BigEndian.Uint16(p[j*6:])) != s.ID {
			j++
		}
		if j == kept {
			copy(p[kept*6:], p[i*6:i*6+6])
			kept++
			continue
		}
		prev := http2.Setting{ID: s.ID, Val: binary.BigEndian.Uint32(p[j*6+2:])}
		switch {
		case prev.Valid() != nil:
		case s.ID == http2.SettingHeaderTableSize && prev.Val < s.Val:
		default:
			binary.BigEndian.PutUint32(p[j*6+2:], s.Val)
		}
	}
	return kept * 6
}
