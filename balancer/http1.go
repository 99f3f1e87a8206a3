package balancer

import (
	"bufio"
	"bytes"
	"errors"
)

// Limits on what a client may send, as on ALB: a request line or one header
// line of at most 16 KiB, all headers together at most 64 KiB.
const (
	maxLineBytes = 16 << 10
	maxHeadBytes = 64 << 10
	maxHeaders   = 256
)

var (
	errLineTooLong   = errors.New("request line or header line longer than 16 KiB")
	errHeadTooLarge  = errors.New("request headers larger than 64 KiB")
	errMalformedHead = errors.New("malformed request head")
	errBadFraming    = errors.New("conflicting or invalid Content-Length / Transfer-Encoding")
	errBadResponse   = errors.New("malformed response head from target")
	errBadChunk      = errors.New("malformed chunked body")
)

// span is a byte range of a head's raw buffer; a head keeps spans, not
// strings, so parsing allocates nothing.
type span struct{ start, end int }

func (s span) of(raw []byte) []byte { return raw[s.start:s.end] }

type headerKind uint8

// Headers the balancer reads or rewrites. Everything else passes through.
const (
	hOther headerKind = iota
	hHost
	hContentLength
	hTransferEncoding
	hConnection
	hKeepAlive
	hProxyConnection
	hUpgrade
	hTE
	hExpect
	hXForwardedFor
	hXForwardedProto
	hXForwardedPort
	hXRequestID
	hCookie
	hSetCookie
	hAccept
	hUserAgent
)

var knownHeaders = []struct {
	name string
	kind headerKind
}{
	{"host", hHost}, {"content-length", hContentLength}, {"transfer-encoding", hTransferEncoding},
	{"connection", hConnection}, {"keep-alive", hKeepAlive}, {"proxy-connection", hProxyConnection},
	{"upgrade", hUpgrade}, {"te", hTE}, {"expect", hExpect}, {"x-forwarded-for", hXForwardedFor},
	{"x-forwarded-proto", hXForwardedProto}, {"x-forwarded-port", hXForwardedPort},
	{"x-request-id", hXRequestID}, {"cookie", hCookie}, {"set-cookie", hSetCookie}, {"accept", hAccept},
	{"user-agent", hUserAgent},
}

func classify(name []byte) headerKind {
	for _, k := range knownHeaders {
		if len(k.name) == len(name) && equalFoldASCII(name, k.name) {
			return k.kind
		}
	}
	return hOther
}

func equalFoldASCII(b []byte, lower string) bool {
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

type header struct {
	name, value span
	kind        headerKind
	// connectionListed marks a field the Connection header names: hop-by-hop,
	// not forwarded (RFC 9110 7.6.1).
	connectionListed bool
}

// head is the parsed head of a request or a response. raw holds the bytes as
// read; the spans point into it. A head is reused from message to message.
type head struct {
	raw     []byte
	first   [3]span // request: method, target, version; response: version, status, reason
	headers []header

	http10        bool
	contentLength int64 // -1 when absent
	chunked       bool
	connClose     bool
	connKeepAlive bool
	connUpgrade   bool
	// connListsFields is true when Connection names fields besides close,
	// keep-alive and upgrade: they are marked connectionListed at the end of the head.
	connListsFields bool
	expect100       bool
	status          int // responses only
	// wantsJSON is true when Accept names application/json: the balancer's
	// own error pages are then JSON.
	wantsJSON bool
	// forwardedFor counts the addresses of the X-Forwarded-For lines.
	forwardedFor int
}

func (h *head) reset() {
	h.raw = h.raw[:0]
	h.headers = h.headers[:0]
	h.http10, h.chunked, h.connClose, h.connKeepAlive, h.connUpgrade, h.connListsFields, h.expect100 = false, false, false, false, false, false, false
	h.wantsJSON, h.forwardedFor = false, 0
	h.contentLength = -1
	h.status = 0
}

// readLine appends one line (with its CRLF or LF) to h.raw and returns its span.
func (h *head) readLine(r *bufio.Reader) (span, error) {
	start := len(h.raw)
	for {
		chunk, err := r.ReadSlice('\n')
		h.raw = append(h.raw, chunk...)
		if len(h.raw)-start > maxLineBytes {
			return span{}, errLineTooLong
		}
		if len(h.raw) > maxHeadBytes {
			return span{}, errHeadTooLarge
		}
		if err == nil {
			return span{start, len(h.raw)}, nil
		}
		if err != bufio.ErrBufferFull {
			return span{}, err
		}
	}
}

// trimEOL returns the span without its trailing CRLF or LF.
func (h *head) trimEOL(s span) span {
	if s.end > s.start && h.raw[s.end-1] == '\n' {
		s.end--
	}
	if s.end > s.start && h.raw[s.end-1] == '\r' {
		s.end--
	}
	return s
}

// read reads and parses a head: the first line split in three on spaces, then
// header lines up to the empty line. It tolerates empty lines before a request
// (RFC 9112 2.2).
func (h *head) read(r *bufio.Reader, isResponse bool) error {
	h.reset()
	var line span
	var err error
	for {
		if line, err = h.readLine(r); err != nil {
			return err
		}
		line = h.trimEOL(line)
		if line.end > line.start || isResponse {
			break
		}
		h.raw = h.raw[:0]
	}
	if err := h.splitFirstLine(line, isResponse); err != nil {
		return err
	}
	for {
		if line, err = h.readLine(r); err != nil {
			return err
		}
		line = h.trimEOL(line)
		if line.end == line.start {
			if h.connListsFields {
				h.markConnectionListed()
			}
			return nil
		}
		if len(h.headers) == maxHeaders {
			return errHeadTooLarge
		}
		if err := h.addHeader(line); err != nil {
			return err
		}
	}
}

// markConnectionListed marks the fields that a Connection header names.
func (h *head) markConnectionListed() {
	for i := range h.headers {
		if h.headers[i].kind != hConnection {
			continue
		}
		forEachToken(h.headers[i].value.of(h.raw), func(tok []byte) {
			for j := range h.headers {
				if name := h.headers[j].name.of(h.raw); len(name) == len(tok) && bytes.EqualFold(name, tok) {
					h.headers[j].connectionListed = true
				}
			}
		})
	}
}

func (h *head) splitFirstLine(line span, isResponse bool) error {
	b := line.of(h.raw)
	sp1 := bytes.IndexByte(b, ' ')
	if sp1 <= 0 {
		return errMalformedHead
	}
	rest := b[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		if !isResponse {
			return errMalformedHead
		}
		sp2 = len(rest) // "HTTP/1.1 200" without a reason phrase
	}
	h.first[0] = span{line.start, line.start + sp1}
	h.first[1] = span{line.start + sp1 + 1, line.start + sp1 + 1 + sp2}
	h.first[2] = span{min(line.start+sp1+2+sp2, line.end), line.end}
	version := h.first[0]
	if !isResponse {
		version = h.first[2]
	}
	v := version.of(h.raw)
	switch {
	case bytes.Equal(v, []byte("HTTP/1.1")):
	case bytes.Equal(v, []byte("HTTP/1.0")):
		h.http10 = true
	default:
		return errMalformedHead
	}
	if isResponse {
		code := h.first[1].of(h.raw)
		if len(code) != 3 {
			return errBadResponse
		}
		for _, c := range code {
			if c < '0' || c > '9' {
				return errBadResponse
			}
			h.status = h.status*10 + int(c-'0')
		}
		if h.status < 100 {
			return errBadResponse
		}
	} else if h.first[1].end == h.first[1].start {
		return errMalformedHead
	}
	return nil
}

func (h *head) addHeader(line span) error {
	b := line.of(h.raw)
	colon := bytes.IndexByte(b, ':')
	if colon <= 0 || b[0] == ' ' || b[0] == '\t' || b[colon-1] == ' ' {
		// obs-fold continuation lines and a space before the colon are refused (RFC 9112 5.1, 5.2).
		return errMalformedHead
	}
	vs, ve := line.start+colon+1, line.end
	for vs < ve && (h.raw[vs] == ' ' || h.raw[vs] == '\t') {
		vs++
	}
	for ve > vs && (h.raw[ve-1] == ' ' || h.raw[ve-1] == '\t') {
		ve--
	}
	hd := header{name: span{line.start, line.start + colon}, value: span{vs, ve}}
	hd.kind = classify(hd.name.of(h.raw))
	value := hd.value.of(h.raw)
	switch hd.kind {
	case hContentLength:
		n, ok := parseDecimal(value)
		if !ok || (h.contentLength >= 0 && h.contentLength != n) {
			return errBadFraming
		}
		h.contentLength = n
	case hTransferEncoding:
		if !equalFoldASCII(value, "chunked") || len(value) != len("chunked") {
			return errBadFraming // only "chunked" alone is accepted: anything else invites smuggling
		}
		h.chunked = true
	case hConnection:
		forEachToken(value, func(tok []byte) {
			switch {
			case len(tok) == 5 && equalFoldASCII(tok, "close"):
				h.connClose = true
			case len(tok) == 10 && equalFoldASCII(tok, "keep-alive"):
				h.connKeepAlive = true
			case len(tok) == 7 && equalFoldASCII(tok, "upgrade"):
				h.connUpgrade = true
			default:
				h.connListsFields = true
			}
		})
	case hExpect:
		h.expect100 = len(value) == 12 && equalFoldASCII(value, "100-continue")
	case hAccept:
		h.wantsJSON = h.wantsJSON || containsFold(value, "application/json")
	case hXForwardedFor:
		if len(bytes.TrimSpace(value)) > 0 {
			h.forwardedFor += 1 + bytes.Count(value, []byte{','})
		}
	}
	h.headers = append(h.headers, hd)
	if h.chunked && h.contentLength >= 0 {
		return errBadFraming
	}
	return nil
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func forEachToken(b []byte, fn func([]byte)) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, ',')
		tok := b
		if i >= 0 {
			tok, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) > 0 {
			fn(tok)
		}
	}
}

// keepAlive reports whether the sender of this head expects the connection to
// stay open after the message.
func (h *head) keepAlive() bool {
	if h.http10 {
		return h.connKeepAlive && !h.connClose
	}
	return !h.connClose
}

// hostAndPath returns the request's host (from an absolute-form target or the
// Host header, without port, as sent) and path (without query).
func (h *head) hostAndPath() (host, path []byte) {
	target := h.first[1].of(h.raw)
	if len(target) > 0 && target[0] != '/' {
		// absolute form: http://host[:port]/path
		if i := bytes.Index(target, []byte("://")); i > 0 {
			rest := target[i+3:]
			slash := bytes.IndexByte(rest, '/')
			if slash < 0 {
				host, target = rest, []byte("/")
			} else {
				host, target = rest[:slash], rest[slash:]
			}
		}
	}
	if host == nil {
		for i := range h.headers {
			if h.headers[i].kind == hHost {
				host = h.headers[i].value.of(h.raw)
				break
			}
		}
	}
	host = stripPort(host)
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		target = target[:q]
	}
	return host, target
}

// query returns the request target's query string, without "?".
func (h *head) query() []byte {
	target := h.first[1].of(h.raw)
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		return target[q+1:]
	}
	return nil
}

// header returns the value of the first header line of kind k, or nil.
func (h *head) header(k headerKind) []byte {
	for i := range h.headers {
		if h.headers[i].kind == k {
			return h.headers[i].value.of(h.raw)
		}
	}
	return nil
}

// containsFold reports whether b contains the lower-case ASCII string sub,
// ignoring case.
func containsFold(b []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if equalFoldASCII(b[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

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

// bodyless reports whether a response to a request with method has no body
// whatever its headers say (RFC 9112 6.3).
func responseHasNoBody(method []byte, status int) bool {
	return status < 200 || status == 204 || status == 304 || bytes.Equal(method, []byte("HEAD"))
}

// idempotent methods may be retried on a new connection when a reused one
// failed before any byte of the response arrived.
func idempotent(method []byte) bool {
	switch string(method) { // the compiler does not allocate for a switch on string(bytes)
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// copyChunked copies a chunked body, framing included, from src to dst and
// returns the number of bytes copied. It flushes dst whenever src has nothing
// buffered, so streamed responses reach the client at once; refresh, when not
// nil, is called before every read that may block (to extend a deadline).
func copyChunked(dst *bufio.Writer, src *bufio.Reader, scratch *head, refresh func()) (int64, error) {
	var total int64
	for {
		scratch.raw = scratch.raw[:0]
		if err := flushBeforeBlocking(dst, src, refresh); err != nil {
			return total, err
		}
		line, err := scratch.readLine(src)
		if err != nil {
			return total, err
		}
		size, ok := parseChunkSize(scratch.trimEOL(line).of(scratch.raw))
		if !ok {
			return total, errBadChunk
		}
		if _, err := dst.Write(scratch.raw); err != nil {
			return total, err
		}
		total += int64(len(scratch.raw))
		if size == 0 {
			// trailer section up to the empty line
			for {
				scratch.raw = scratch.raw[:0]
				line, err := scratch.readLine(src)
				if err != nil {
					return total, err
				}
				if _, err := dst.Write(scratch.raw); err != nil {
					return total, err
				}
				total += int64(len(scratch.raw))
				if t := scratch.trimEOL(line); t.end == t.start {
					return total, nil
				}
			}
		}
		n, err := copyN(dst, src, size+2, refresh) // data and its CRLF
		total += n
		if err != nil {
			return total, err
		}
	}
}

func parseChunkSize(b []byte) (int64, bool) {
	if i := bytes.IndexByte(b, ';'); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// copyN copies exactly n bytes from src to dst through src's buffer, flushing
// dst before each read that may block so a slow stream is not held back.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64, refresh func()) (int64, error) {
	var done int64
	for done < n {
		if err := flushBeforeBlocking(dst, src, refresh); err != nil {
			return done, err
		}
		if _, err := src.Peek(1); err != nil {
			return done, err
		}
		k := int64(src.Buffered())
		if k > n-done {
			k = n - done
		}
		buf, _ := src.Peek(int(k))
		w, err := dst.Write(buf)
		src.Discard(w)
		done += int64(w)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// flushBeforeBlocking flushes dst and calls refresh when the next read of src
// may block: what was read so far reaches its reader first.
func flushBeforeBlocking(dst *bufio.Writer, src *bufio.Reader, refresh func()) error {
	if src.Buffered() > 0 {
		return nil
	}
	if refresh != nil {
		refresh()
	}
	if dst.Buffered() > 0 {
		return dst.Flush()
	}
	return nil
}
