package h2server

import (
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A header block (a HEADERS frame and the CONTINUATION frames after it, an
// order the Framer holds the client to) is decoded here as its frames come,
// not gathered first: a block that grows past the header-list limit ends
// the connection before it is whole (the CVE-2024-27316 class). The checks
// are RFC 9113 8.2 and 8.3's, as x/net's Framer makes them, plus the
// connection-specific fields of 8.2.2.

// headerBlock is the header block being decoded on a connection.
type headerBlock struct {
	dec *hpack.Decoder
	// meta is the block, handed to onHeaders when it ends.
	meta http2.MetaHeadersFrame
	// limit is the header list a block may hold (RFC 9113 6.5.2's size:
	// name, value and 32 per field), remain what the block may still hold.
	limit, remain uint32
	sawRegular    bool
	// malformed: a field broke the rules; the block is decoded on, for the
	// HPACK table, and its stream is reset.
	malformed bool
	// fieldsHint is the most fields a block had, up to maxFieldsHint: a
	// new block's list is made that large at once.
	fieldsHint int
}

const maxFieldsHint = 32

// defaultHeaderList is the header-list limit of a Server that sets none.
const defaultHeaderList = 16 << 20

func (c *conn) initHeaderBlocks() {
	c.hb.limit = c.srv.MaxHeaderListSize
	if c.hb.limit == 0 {
		c.hb.limit = defaultHeaderList
	}
	c.hb.dec = hpack.NewDecoder(4096, c.emitField)
	c.hb.dec.SetMaxStringLength(int(c.hb.limit))
	c.hb.fieldsHint = 8
}

// onHeadersFrame starts a header block.
func (c *conn) onHeadersFrame(f *http2.HeadersFrame) error {
	b := &c.hb
	b.meta = http2.MetaHeadersFrame{HeadersFrame: f, Fields: make([]hpack.HeaderField, 0, b.fieldsHint)}
	b.remain = b.limit
	b.sawRegular, b.malformed = false, false
	b.dec.SetEmitEnabled(true)
	return c.onBlockFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

// onBlockFragment decodes the next fragment of the block; at the block's
// end, it goes to onHeaders.
func (c *conn) onBlockFragment(frag []byte, ended bool) error {
	b := &c.hb
	// A fragment far larger than what the block may still hold, or any
	// after a malformed field (whose size was not counted), is not decoded:
	// x/net's choice.
	if int64(len(frag)) > 2*int64(b.remain) || b.malformed && len(frag) > 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if _, err := b.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !ended {
		return nil
	}
	meta := b.meta
	b.meta = http2.MetaHeadersFrame{}
	if err := b.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	id := meta.StreamID
	if b.malformed || !validPseudoFields(meta.PseudoFields()) {
		c.wmu.Lock()
		if id%2 == 1 && id > c.maxSeen && c.streams[id] == nil {
			c.maxSeen = id // the stream opened, and is reset: closed, not idle
		}
		c.wmu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	b.fieldsHint = min(max(b.fieldsHint, len(meta.Fields)), maxFieldsHint)
	return c.onHeaders(&meta)
}

// emitField takes a decoded field of the block.
func (c *conn) emitField(hf hpack.HeaderField) {
	b := &c.hb
	switch {
	case !httpguts.ValidHeaderFieldValue(hf.Value):
		b.malformed = true
	case len(hf.Name) > 0 && hf.Name[0] == ':':
		b.malformed = b.sawRegular // pseudo-header fields come first (8.3)
	default:
		b.sawRegular = true
		b.malformed = !validFieldName(hf.Name) || connectionSpecific(hf)
	}
	if b.malformed {
		b.dec.SetEmitEnabled(false)
		return
	}
	if size := hf.Size(); size <= b.remain {
		b.remain -= size
		b.meta.Fields = append(b.meta.Fields, hf)
		return
	}
	b.dec.SetEmitEnabled(false)
	b.meta.Truncated = true // answered 431 (onHeaders)
	b.remain = 0
}

// validFieldName reports whether name is a token in lower case (RFC 9113
// 8.2.1: a field name in upper case is malformed).
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' || !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// connectionSpecific reports whether hf is a connection-specific field,
// which makes a request malformed (RFC 9113 8.2.2); TE may only say
// "trailers".
func connectionSpecific(hf hpack.HeaderField) bool {
	switch hf.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	case "te":
		return hf.Value != "trailers"
	}
	return false
}

// validPseudoFields reports whether a request's pseudo-header fields are
// known ones, each at most once (RFC 9113 8.3).
func validPseudoFields(fields []hpack.HeaderField) bool {
	for i, hf := range fields {
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority":
		default:
			return false // :status, :protocol (no extended CONNECT here) or unknown
		}
		for _, before := range fields[:i] {
			if before.Name == hf.Name {
				return false
			}
		}
	}
	return true
}
