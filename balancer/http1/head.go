// Package http1 is berth's HTTP/1.1 codec: it reads request and response heads
// and the body framings (Content-Length, chunked with extensions and trailers,
// until close) from untrusted peers, and writes what it accepted in canonical
// form. It imports nothing of the rest of the balancer, so it is tested and
// fuzzed alone; it allocates nothing per message once its buffers have grown.
//
// # Grammar
//
// The grammar is RFC 9112's and RFC 9110 section 5's, strictly. A message
// that breaks a MUST of either is refused (ErrMalformed, ErrBadFraming: 400
// for a request, 502 for a response; ErrNotImplemented: 501; ErrVersion: 505);
// the caller closes the connection, since the framing of what follows is lost.
//
//   - start-line: method (a token) SP request-target SP HTTP-version, one SP
//     each; status-line: HTTP-version SP 3DIGIT [SP reason-phrase]. The
//     versions are HTTP/1.1 and HTTP/1.0; another HTTP/x.y is ErrVersion.
//   - request-target: origin-form ("/" then visible ASCII, no "#"),
//     absolute-form (http or https, an authority without userinfo), or "*"
//     with OPTIONS. CONNECT is ErrNotImplemented: berth tunnels no CONNECT.
//   - field-line: a token name, ":" right after it, OWS, a value of VCHAR,
//     obs-text, SP and HTAB only (no NUL, no CR, no other control byte), OWS.
//     Whitespace before the first field line is refused (RFC 9112 2.2).
//   - Host: an HTTP/1.1 request has exactly one, an HTTP/1.0 request at most
//     one, and its value is uri-host [":" port]. With an absolute-form target
//     the Host field is ignored and the target's authority is the host
//     (RFC 9112 3.2.2); Head.Host says which.
//   - Content-Length: 1*DIGIT; repeated, every value must be the same.
//     Transfer-Encoding: a request's must end with chunked, once (else
//     ErrBadFraming); another coding before it is ErrNotImplemented. A
//     response's must be chunked alone (else ErrBadFraming: berth decodes no
//     other coding). Both fields together, or Transfer-Encoding in an
//     HTTP/1.0 message, are ErrBadFraming (RFC 9112 6.1, 6.3).
//   - Connection: a list of tokens. The fields it names are hop-by-hop and
//     not forwarded, except Content-Length, Transfer-Encoding, Host, TE and
//     Upgrade, which a Connection field never removes: the framing and the
//     routing must be what the next hop reads too.
//   - chunked: chunk-size is 1*HEXDIG (at most 2^52-1), BWS, optional
//     extensions, CRLF; the data is followed by CRLF; trailer fields follow the
//     field-line rules. Extensions are checked as HAProxy does (no control
//     byte, quotes balanced, a backslash only inside quotes) and dropped.
//
// Where the RFCs allow leniency berth does what HAProxy does:
//
//   - a bare LF ends a head line (RFC 9112 2.2); a bare CR anywhere is
//     refused. Chunk-size lines and the end of chunk data need CRLF.
//   - obs-fold in a field value (RFC 9112 5.2) is replaced by spaces, in
//     place, and the field is forwarded on one line.
//   - empty lines before a request line are skipped (RFC 9112 2.2).
//
// What is accepted is written in canonical form: a field as "name: value"
// CRLF, a chunk as HEX CRLF data CRLF, trailers as field lines.
package http1

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
)

// Limits on a head, as on ALB: a line of at most 16 KiB, a head of at most
// 64 KiB and 256 fields.
const (
	MaxLineBytes = 16 << 10
	MaxHeadBytes = 64 << 10
	MaxFields    = 256
)

var (
	ErrLineTooLong  = errors.New("http1: request line or field line longer than 16 KiB")
	ErrHeadTooLarge = errors.New("http1: head larger than 64 KiB or with more than 256 fields")
	ErrMalformed    = errors.New("http1: malformed head")
	ErrBadFraming   = errors.New("http1: invalid or conflicting Content-Length / Transfer-Encoding")
	// ErrNotImplemented is a request berth cannot forward faithfully: a
	// transfer coding other than chunked, or CONNECT.
	ErrNotImplemented = errors.New("http1: transfer coding or method not implemented")
	ErrVersion        = errors.New("http1: HTTP version not supported")
	ErrBadChunk       = errors.New("http1: malformed chunked body")
)

// Span is a byte range of a head's Raw buffer: a head keeps spans, not
// strings, so parsing allocates nothing.
type Span struct{ Start, End int }

// Of returns the bytes of s in raw.
func (s Span) Of(raw []byte) []byte { return raw[s.Start:s.End] }

// Len is the length of s.
func (s Span) Len() int { return s.End - s.Start }

// FieldKind names the fields the framing depends on and those a proxy reads
// or rewrites, so that one pass over a head finds them all.
type FieldKind uint8

const (
	FieldOther FieldKind = iota
	FieldHost
	FieldContentLength
	FieldTransferEncoding
	FieldConnection
	FieldKeepAlive
	FieldProxyConnection
	FieldUpgrade
	FieldTE
	FieldExpect
	FieldXForwardedFor
	FieldXForwardedProto
	FieldXForwardedPort
	FieldXRequestID
	FieldCookie
	FieldSetCookie
	FieldAccept
	FieldUserAgent
)

var knownFields = [...]struct {
	name string
	kind FieldKind
}{
	{"host", FieldHost}, {"content-length", FieldContentLength}, {"transfer-encoding", FieldTransferEncoding},
	{"connection", FieldConnection}, {"keep-alive", FieldKeepAlive}, {"proxy-connection", FieldProxyConnection},
	{"upgrade", FieldUpgrade}, {"te", FieldTE}, {"expect", FieldExpect}, {"x-forwarded-for", FieldXForwardedFor},
	{"x-forwarded-proto", FieldXForwardedProto}, {"x-forwarded-port", FieldXForwardedPort},
	{"x-request-id", FieldXRequestID}, {"cookie", FieldCookie}, {"set-cookie", FieldSetCookie}, {"accept", FieldAccept},
	{"user-agent", FieldUserAgent},
}

// knownByLength lists knownFields by the length of their names: a field
// name is compared with the few known names of its length only, eight
// bytes at a time (foldedName).
var knownByLength [len("x-forwarded-proto") + 1][]foldedName

// foldedName is a known name as 64-bit words (the last one overlapping the
// one before it when the length is not a multiple of 8) and, per word, the
// bits that fold case: 0x20 in each byte that is a letter. A byte matches
// when, with its 0x20 bit set where the name has a letter, it is the name's:
// an upper-case letter then becomes its lower case, and any byte that is not
// a letter must be the name's own.
type foldedName struct {
	words, folds [3]uint64
	kind         FieldKind
}

func init() {
	for _, k := range knownFields {
		f := foldedName{kind: k.kind}
		for w, at := range wordStarts(len(k.name)) {
			f.words[w] = loadWord([]byte(k.name[at:]))
			for i := range min(8, len(k.name)-at) {
				if c := k.name[at+i]; 'a' <= c && c <= 'z' {
					f.folds[w] |= 0x20 << (8 * i)
				}
			}
		}
		knownByLength[len(k.name)] = append(knownByLength[len(k.name)], f)
	}
}

// wordStarts are the offsets of the words of a name of n bytes, at most 24:
// every 8 bytes, the last one ending at n.
func wordStarts(n int) []int {
	switch {
	case n <= 8:
		return []int{0}
	case n <= 16:
		return []int{0, n - 8}
	}
	return []int{0, 8, n - 8}
}

// loadWord reads up to 8 bytes of b as a little-endian word.
func loadWord(b []byte) uint64 {
	if len(b) >= 8 {
		return binary.LittleEndian.Uint64(b)
	}
	var w uint64
	for i := len(b) - 1; i >= 0; i-- {
		w = w<<8 | uint64(b[i])
	}
	return w
}

func classify(name []byte) FieldKind {
	n := len(name)
	if n >= len(knownByLength) {
		return FieldOther
	}
	candidates := knownByLength[n]
	if len(candidates) == 0 {
		return FieldOther
	}
	// The name's words, as the candidates' are laid out.
	var words [3]uint64
	switch {
	case n <= 8:
		words[0] = loadWord(name)
	case n <= 16:
		words[0], words[1] = loadWord(name), loadWord(name[n-8:])
	default:
		words[0], words[1], words[2] = loadWord(name), loadWord(name[8:]), loadWord(name[n-8:])
	}
	for i := range candidates {
		f := &candidates[i]
		if words[0]|f.folds[0] == f.words[0] && words[1]|f.folds[1] == f.words[1] && words[2]|f.folds[2] == f.words[2] {
			return f.kind
		}
	}
	return FieldOther
}

// EqualFold reports whether b is the lower-case ASCII string lower, ignoring
// the case of b.
func EqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Field is one field line of a head.
type Field struct {
	Name, Value Span
	Kind        FieldKind
	// Hop marks a field that ends at this hop: named by the Connection field
	// (RFC 9110 7.6.1), or a repeated Content-Length, or a Host an
	// absolute-form target overrides.
	Hop bool
}

// Head is the parsed head of a request or a response. Raw holds the bytes as
// read (obs-folds turned into spaces); the spans point into it. A head is
// reused from message to message.
type Head struct {
	Raw []byte
	// Line is the start-line: a request's method, target and version, a
	// response's version, status code and reason phrase.
	Line   [3]Span
	Fields []Field
	Status int // responses only

	HTTP10        bool
	ContentLength int64 // -1 when absent
	Chunked       bool
	// Close, KeepAlive and Upgrade are the Connection options of that name.
	Close, KeepAlive, Upgrade bool
	// Expect100 is a request's Expect: 100-continue.
	Expect100 bool

	// Requests only: Host is the authority the request is for (the
	// absolute-form target's, else the Host field's value), HasHost whether
	// there is one; Path is the target in origin-form (path and query; "*"
	// for a server-wide OPTIONS), to forward. AbsoluteForm says the target
	// was absolute, so the forwarded Host must be written from Host.
	Host, Path   Span
	HasHost      bool
	AbsoluteForm bool

	// connectionLists is set when Connection names fields besides its options.
	connectionLists bool
	// lineEnd is the end of the last field line without its line break,
	// for unfolding an obs-fold into it.
	lineEnd int
}

// Reset empties h for the next message, keeping its buffers.
func (h *Head) Reset() {
	*h = Head{Raw: h.Raw[:0], Fields: h.Fields[:0], ContentLength: -1}
}

// ReadRequest reads and checks a request head. Empty lines before it are
// skipped.
func (h *Head) ReadRequest(r *bufio.Reader) error {
	h.Reset()
	var line Span
	for {
		var err error
		if line, err = h.readLine(r); err != nil {
			return err
		}
		if line.End > line.Start {
			break
		}
		h.Raw = h.Raw[:0]
	}
	if err := h.parseRequestLine(line); err != nil {
		return err
	}
	if err := h.readFields(r, true); err != nil {
		return err
	}
	return h.interpret(false)
}

// ReadResponse reads and checks a response head.
func (h *Head) ReadResponse(r *bufio.Reader) error {
	h.Reset()
	line, err := h.readLine(r)
	if err != nil {
		return err
	}
	if err := h.parseStatusLine(line); err != nil {
		return err
	}
	if err := h.readFields(r, true); err != nil {
		return err
	}
	return h.interpret(true)
}

// ReadTrailers reads the trailer section of a chunked body into h.Fields, up
// to its empty line. Trailer fields follow the field-line rules; obs-fold is
// refused there.
func (h *Head) ReadTrailers(r *bufio.Reader) error {
	h.Reset()
	return h.readFields(r, false)
}

// readLine appends one line to h.Raw and returns its span without the line
// break. A line must end in LF, or CRLF; a CR elsewhere is left in the line
// for the grammar checks to refuse.
func (h *Head) readLine(r *bufio.Reader) (Span, error) {
	start := len(h.Raw)
	for {
		chunk, err := r.ReadSlice('\n')
		h.Raw = append(h.Raw, chunk...)
		if len(h.Raw)-start > MaxLineBytes {
			return Span{}, ErrLineTooLong
		}
		if len(h.Raw) > MaxHeadBytes {
			return Span{}, ErrHeadTooLarge
		}
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return Span{}, err
		}
	}
	end := len(h.Raw) - 1 // the LF
	if end > start && h.Raw[end-1] == '\r' {
		end--
	}
	return Span{start, end}, nil
}

// readFields reads field lines up to the empty line.
func (h *Head) readFields(r *bufio.Reader, allowFold bool) error {
	for {
		line, err := h.readLine(r)
		if err != nil {
			return err
		}
		if line.End == line.Start {
			return nil
		}
		if c := h.Raw[line.Start]; c == ' ' || c == '\t' {
			if !allowFold || len(h.Fields) == 0 {
				return ErrMalformed
			}
			if err := h.unfold(line); err != nil {
				return err
			}
			continue
		}
		if len(h.Fields) == MaxFields {
			return ErrHeadTooLarge
		}
		if err := h.addField(line); err != nil {
			return err
		}
	}
}

// addField checks one field line and appends it.
func (h *Head) addField(line Span) error {
	b := line.Of(h.Raw)
	colon := bytes.IndexByte(b, ':')
	if colon <= 0 {
		return ErrMalformed
	}
	// A known name is a token: only the others are checked byte by byte.
	kind := classify(b[:colon])
	if kind == FieldOther && !isToken(b[:colon]) {
		return ErrMalformed
	}
	vs, ve := line.Start+colon+1, line.End
	for vs < ve && isOWS(h.Raw[vs]) {
		vs++
	}
	for ve > vs && isOWS(h.Raw[ve-1]) {
		ve--
	}
	if !validValue(h.Raw[vs:ve]) {
		return ErrMalformed
	}
	h.Fields = append(h.Fields, Field{Name: Span{line.Start, line.Start + colon}, Value: Span{vs, ve}, Kind: kind})
	h.lineEnd = line.End
	return nil
}

// unfold joins an obs-fold continuation line to the field before it: the
// line break between them becomes spaces, as HAProxy does.
func (h *Head) unfold(line Span) error {
	ve := line.End
	for ve > line.Start && isOWS(h.Raw[ve-1]) {
		ve--
	}
	if !validValue(h.Raw[line.Start:ve]) {
		return ErrMalformed
	}
	for i := h.lineEnd; i < line.Start; i++ {
		h.Raw[i] = ' '
	}
	f := &h.Fields[len(h.Fields)-1]
	if ve > line.Start {
		if f.Value.Start == f.Value.End {
			f.Value.Start = line.Start
			for isOWS(h.Raw[f.Value.Start]) {
				f.Value.Start++
			}
		}
		f.Value.End = ve
	}
	h.lineEnd = line.End
	return nil
}

func (h *Head) parseRequestLine(line Span) error {
	b := line.Of(h.Raw)
	sp1 := bytes.IndexByte(b, ' ')
	if sp1 <= 0 {
		return ErrMalformed
	}
	sp2 := bytes.IndexByte(b[sp1+1:], ' ')
	if sp2 <= 0 {
		return ErrMalformed
	}
	sp2 += sp1 + 1
	h.Line = [3]Span{{line.Start, line.Start + sp1}, {line.Start + sp1 + 1, line.Start + sp2}, {line.Start + sp2 + 1, line.End}}
	if !isToken(h.Line[0].Of(h.Raw)) {
		return ErrMalformed
	}
	if err := h.parseVersion(h.Line[2].Of(h.Raw)); err != nil {
		return err
	}
	method := h.Line[0].Of(h.Raw)
	if string(method) == "CONNECT" {
		return ErrNotImplemented
	}
	return h.parseTarget(h.Line[1], string(method) == "OPTIONS")
}

func (h *Head) parseVersion(v []byte) error {
	switch string(v) {
	case "HTTP/1.1":
		return nil
	case "HTTP/1.0":
		h.HTTP10 = true
		return nil
	}
	if len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]) {
		return ErrVersion
	}
	return ErrMalformed
}

// parseTarget checks the request-target and finds its path and, in
// absolute-form, its authority.
func (h *Head) parseTarget(t Span, options bool) error {
	b := t.Of(h.Raw)
	for _, c := range b {
		if !uriChar[c] {
			return ErrMalformed
		}
	}
	switch {
	case b[0] == '/':
		h.Path = t
		return nil
	case len(b) == 1 && b[0] == '*':
		if !options {
			return ErrMalformed
		}
		h.Path = t
		return nil
	}
	// absolute-form: scheme "://" authority path-abempty [ "?" query ]
	rest := 0
	switch {
	case len(b) > 7 && EqualFold(b[:7], "http://"):
		rest = 7
	case len(b) > 8 && EqualFold(b[:8], "https://"):
		rest = 8
	default:
		return ErrMalformed
	}
	end := rest
	for end < len(b) && b[end] != '/' && b[end] != '?' {
		end++
	}
	authority := Span{t.Start + rest, t.Start + end}
	if authority.Len() == 0 || !validAuthority(authority.Of(h.Raw)) {
		return ErrMalformed
	}
	if end < len(b) && b[end] == '?' {
		return ErrMalformed // a query without a path: forwarding would need a "/" in between
	}
	h.Host, h.HasHost, h.AbsoluteForm = authority, true, true
	h.Path = Span{t.Start + end, t.End} // empty: "/" (or "*" for OPTIONS) is forwarded
	return nil
}

func (h *Head) parseStatusLine(line Span) error {
	b := line.Of(h.Raw)
	if len(b) < 12 || b[8] != ' ' {
		return ErrMalformed
	}
	if err := h.parseVersion(b[:8]); err != nil {
		return err
	}
	code := b[9:12]
	for _, c := range code {
		if !isDigit(c) {
			return ErrMalformed
		}
		h.Status = h.Status*10 + int(c-'0')
	}
	if h.Status < 100 {
		return ErrMalformed
	}
	reason := Span{line.Start + 12, line.End}
	if len(b) > 12 {
		if b[12] != ' ' {
			return ErrMalformed
		}
		reason.Start++
	}
	if !validValue(reason.Of(h.Raw)) {
		return ErrMalformed
	}
	h.Line = [3]Span{{line.Start, line.Start + 8}, {line.Start + 9, line.Start + 12}, reason}
	return nil
}

// interpret reads the fields the framing and the routing depend on.
func (h *Head) interpret(response bool) error {
	var te transferCodings
	hosts := 0
	for i := range h.Fields {
		f := &h.Fields[i]
		value := f.Value.Of(h.Raw)
		switch f.Kind {
		case FieldContentLength:
			if err := h.contentLength(f, value); err != nil {
				return err
			}
		case FieldTransferEncoding:
			if !te.add(value) {
				return ErrBadFraming
			}
		case FieldConnection:
			if !h.connection(value) {
				return ErrMalformed
			}
		case FieldHost:
			if response {
				break
			}
			hosts++
			if hosts > 1 || !validAuthority(value) && len(value) > 0 {
				return ErrMalformed
			}
			if h.AbsoluteForm {
				f.Hop = true
			} else {
				h.Host, h.HasHost = f.Value, true
			}
		case FieldExpect:
			h.Expect100 = EqualFold(value, "100-continue")
		}
	}
	if !response && !h.HTTP10 && hosts == 0 {
		return ErrMalformed // RFC 9112 3.2: a Host field is a MUST in HTTP/1.1
	}
	if te.count > 0 {
		if h.HTTP10 || h.ContentLength >= 0 {
			return ErrBadFraming
		}
		if err := te.check(response); err != nil {
			return err
		}
		h.Chunked = true
	}
	if h.connectionLists {
		h.markConnectionListed()
	}
	return nil
}

func (h *Head) contentLength(f *Field, value []byte) error {
	repeated := h.ContentLength >= 0
	elements := 0
	ok := forEachElement(value, func(e []byte) bool {
		n, ok := parseDecimal(e)
		if !ok || h.ContentLength >= 0 && h.ContentLength != n {
			return false
		}
		h.ContentLength = n
		elements++
		return true
	})
	if !ok || elements == 0 {
		return ErrBadFraming
	}
	// The same length repeated is one length (RFC 9110 8.6), forwarded once
	// and as one value: the next hop may not take a list.
	f.Hop = repeated
	if elements > 1 {
		f.Value.End = f.Value.Start
		for isDigit(h.Raw[f.Value.End]) {
			f.Value.End++
		}
	}
	return nil
}

// transferCodings sums up Transfer-Encoding fields.
type transferCodings struct {
	count, chunked int
	lastChunked    bool
}

func (t *transferCodings) add(value []byte) bool {
	return forEachElement(value, func(e []byte) bool {
		name := e
		if i := bytes.IndexByte(e, ';'); i >= 0 {
			name = bytes.TrimRight(e[:i], " \t")
		}
		if !isToken(name) {
			return false
		}
		t.count++
		t.lastChunked = EqualFold(e, "chunked")
		if t.lastChunked {
			t.chunked++
		}
		return true
	}) && t.count > 0
}

// check applies RFC 9112 6.1 and 6.3: a request's codings must end with
// chunked, once; berth forwards chunked alone.
func (t *transferCodings) check(response bool) error {
	switch {
	case t.chunked == 1 && t.count == 1:
		return nil
	case response, t.chunked != 1, !t.lastChunked:
		return ErrBadFraming
	}
	return ErrNotImplemented
}

// protectedFromConnection are the fields a Connection option never removes.
func protectedFromConnection(k FieldKind) bool {
	switch k {
	case FieldContentLength, FieldTransferEncoding, FieldHost, FieldTE, FieldUpgrade:
		return true
	}
	return false
}

// connection reads the options of one Connection field.
func (h *Head) connection(value []byte) bool {
	return forEachElement(value, func(tok []byte) bool {
		if !isToken(tok) {
			return false
		}
		switch {
		case EqualFold(tok, "close"):
			h.Close = true
		case EqualFold(tok, "keep-alive"):
			h.KeepAlive = true
		case EqualFold(tok, "upgrade"):
			h.Upgrade = true
		default:
			h.connectionLists = true
		}
		return true
	})
}

// markConnectionListed marks the fields that a Connection field names as
// hop-by-hop.
func (h *Head) markConnectionListed() {
	for i := range h.Fields {
		if h.Fields[i].Kind != FieldConnection {
			continue
		}
		forEachElement(h.Fields[i].Value.Of(h.Raw), func(tok []byte) bool {
			for j := range h.Fields {
				f := &h.Fields[j]
				if !protectedFromConnection(f.Kind) && bytes.EqualFold(f.Name.Of(h.Raw), tok) {
					f.Hop = true
				}
			}
			return true
		})
	}
}

// KeepsAlive reports whether the sender of this head expects the connection
// to stay open after the message.
func (h *Head) KeepsAlive() bool {
	if h.HTTP10 {
		return h.KeepAlive && !h.Close
	}
	return !h.Close
}

// Field returns the value of the first field of kind k, or nil.
func (h *Head) Field(k FieldKind) []byte {
	for i := range h.Fields {
		if h.Fields[i].Kind == k {
			return h.Fields[i].Value.Of(h.Raw)
		}
	}
	return nil
}

// Method is a request's method.
func (h *Head) Method() []byte { return h.Line[0].Of(h.Raw) }

// HostAndPath returns the request's host without its port, and its path
// without the query, for routing.
func (h *Head) HostAndPath() (host, path []byte) {
	path = h.Path.Of(h.Raw)
	if len(path) == 0 {
		path = slash
	}
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	return stripPort(h.Host.Of(h.Raw)), path
}

var slash = []byte("/")

// Query returns the request target's query, without "?".
func (h *Head) Query() []byte {
	path := h.Path.Of(h.Raw)
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		return path[q+1:]
	}
	return nil
}

// stripPort returns host without a ":port".
func stripPort(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' { // [::1]:80
		if end := bytes.IndexByte(host, ']'); end > 0 {
			return host[:end+1]
		}
		return host
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		return host[:i]
	}
	return host
}

// ResponseHasNoBody reports whether a response to a request with method has
// no body whatever its fields say (RFC 9112 6.3).
func ResponseHasNoBody(method []byte, status int) bool {
	return status < 200 || status == 204 || status == 304 || string(method) == "HEAD"
}

// forEachElement calls fn with each non-empty element of a comma-separated
// list, without OWS, until fn returns false; it reports whether every call
// returned true.
func forEachElement(b []byte, fn func([]byte) bool) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, ',')
		e := b
		if i >= 0 {
			e, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		for len(e) > 0 && isOWS(e[0]) {
			e = e[1:]
		}
		for len(e) > 0 && isOWS(e[len(e)-1]) {
			e = e[:len(e)-1]
		}
		if len(e) > 0 && !fn(e) {
			return false
		}
	}
	return true
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// WriteRequestLine writes the request line to forward: the method, the
// target in origin-form, the version.
func (h *Head) WriteRequestLine(w *bufio.Writer) {
	if !h.AbsoluteForm {
		// The line as read is canonical: one space between its parts.
		w.Write(h.Raw[h.Line[0].Start:h.Line[2].End])
		w.WriteString("\r\n")
		return
	}
	w.Write(h.Method())
	w.WriteByte(' ')
	switch {
	case h.Path.Len() > 0:
		w.Write(h.Path.Of(h.Raw))
	case string(h.Method()) == "OPTIONS":
		w.WriteByte('*') // RFC 9112 3.2.4
	default:
		w.WriteByte('/')
	}
	w.WriteByte(' ')
	w.Write(h.Line[2].Of(h.Raw))
	w.WriteString("\r\n")
}

// WriteStatusLine writes the status line to forward, with berth's own
// version (RFC 9110 2.5).
func (h *Head) WriteStatusLine(w *bufio.Writer) {
	if !h.HTTP10 && h.Line[2].Len() > 0 {
		w.Write(h.Raw[h.Line[0].Start:h.Line[2].End]) // canonical as read
		w.WriteString("\r\n")
		return
	}
	w.WriteString("HTTP/1.1 ")
	w.Write(h.Line[1].Of(h.Raw))
	w.WriteByte(' ')
	w.Write(h.Line[2].Of(h.Raw))
	w.WriteString("\r\n")
}
