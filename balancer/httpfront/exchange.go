package httpfront

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/berth-lb/berth/balancer/http1"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// exchange is what happened to one request, kept on its client connection
// and reset per request: the response head reads its stickiness, the access
// log all of it.
type exchange struct {
	start, sentToTarget, headReceived time.Time
	status, targetStatus, priority    int
	group                             string
	target                            *pool.Target
	sticky                            *pool.Stickiness
	stickyToken                       string
	// groupToken, when set, goes out in BERTHTG for groupStickiness.
	groupToken      string
	groupStickiness time.Duration
	reason          stats.ErrorReason
	received, sent  int64
	redirectURL     []byte
}

func (e *exchange) reset(start time.Time) {
	*e = exchange{start: start, targetStatus: -1, reason: reasonNone, redirectURL: e.redirectURL[:0]}
}

// requestIDs makes this connection's request IDs: a random prefix per
// connection and a counter, so a new ID costs no allocation and no syscall.
type requestIDs struct {
	prefix  uint64
	counter uint64
	buf     []byte
	// current is the ID of the request being served: the client's or buf.
	current []byte
}

// maxRequestID is the longest X-Request-Id a client may send and have kept.
const maxRequestID = 128

// requestID sets c.ids.current: the client's X-Request-Id when it is valid,
// else a new one.
func (c *ClientConn) requestID() {
	if id := c.req.Field(http1.FieldXRequestID); ValidRequestID(id) {
		c.ids.current = id
		return
	}
	ids := &c.ids
	if ids.prefix == 0 {
		ids.prefix = newRequestIDPrefix()
	}
	ids.counter++
	ids.buf = appendRequestID(ids.buf[:0], ids.prefix, ids.counter)
	ids.current = ids.buf
}

// newRequestIDPrefix is the random, never zero, part of a connection's request IDs.
func newRequestIDPrefix() uint64 { return rand.Uint64() | 1 }

// appendRequestID appends the request ID numbered n under prefix.
func appendRequestID(dst []byte, prefix, n uint64) []byte {
	dst = strconv.AppendUint(dst, prefix, 16)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, n, 16)
}

// ValidRequestID accepts 1..128 bytes of letters, digits and -._:+/=@.
func ValidRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestID {
		return false
	}
	for _, b := range id {
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || bytes.IndexByte([]byte("-._:+/=@"), b) >= 0) {
			return false
		}
	}
	return true
}

// redirect renders the response of ra for the current request into c.buf.
func (c *ClientConn) redirect(ra *RedirectAction, rt *Route, keep bool) []byte {
	host, path := c.req.HostAndPath()
	if len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	parts := redirectParts{protocol: []byte(rt.Scheme), host: host, port: c.forwardedPort, path: path, query: c.req.Query()}
	c.ex.redirectURL = ra.appendLocation(c.ex.redirectURL[:0], &parts)
	c.buf = appendRedirectResponse(c.buf[:0], ra.Status, c.ex.redirectURL, keep)
	return c.buf
}

// pick picks the target of a request's next try (Group.PickFor) and records
// it for the response's stickiness cookie and the access log.
func (ex *exchange) pick(g *pool.Group, tried []*pool.Target, sourceHash uint64, stickyToken []byte) *pool.Target {
	t := g.PickFor(tried, sourceHash, stickyToken)
	if t == nil {
		return nil
	}
	ex.target = t
	if g.Sticky != nil {
		ex.sticky, ex.stickyToken = g.Sticky, g.Sticky.Tokens[t]
	}
	return t
}

// cookie returns the value of the request's cookie name, or nil.
func (c *ClientConn) cookie(name string) []byte {
	h := &c.req
	for i := range h.Fields {
		if h.Fields[i].Kind != http1.FieldCookie {
			continue
		}
		if v := cookieValue(h.Fields[i].Value.Of(h.Raw), name); v != nil {
			return v
		}
	}
	return nil
}

// cookieValue returns the value of cookie name in one Cookie header value, or nil.
func cookieValue(header []byte, name string) []byte {
	for v := header; len(v) > 0; {
		pair := v
		if semi := bytes.IndexByte(v, ';'); semi >= 0 {
			pair, v = v[:semi], v[semi+1:]
		} else {
			v = nil
		}
		pair = bytes.TrimLeft(pair, " \t")
		if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
			return bytes.TrimRight(pair[len(name)+1:], " \t")
		}
	}
	return nil
}

// writeStickyCookie adds the stickiness cookie to a response of a sticky
// group with a fresh expiry: always for lb_cookie, and for app_cookie when the
// application sets its cookie in this response.
func (c *ClientConn) writeStickyCookie(w *bufio.Writer) {
	if c.ex.groupToken != "" {
		c.writeCookie(w, StickyCookieGroup, c.ex.groupToken, c.ex.groupStickiness)
	}
	s := c.ex.sticky
	if s == nil || c.ex.stickyToken == "" {
		return
	}
	if s.AppCookie != "" && !c.responseSetsCookie(s.AppCookie) {
		return
	}
	c.writeCookie(w, s.Cookie, c.ex.stickyToken, s.Duration)
}

// writeCookie writes a Set-Cookie header line expiring after d.
func (c *ClientConn) writeCookie(w *bufio.Writer, name, value string, d time.Duration) {
	w.WriteString("Set-Cookie: ")
	c.buf = appendCookie(c.buf[:0], name, value, d)
	w.Write(c.buf)
	w.WriteString("\r\n")
}

// appendCookie appends a Set-Cookie value: name=value expiring after d, for every path.
func appendCookie(dst []byte, name, value string, d time.Duration) []byte {
	dst = append(dst, name...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	dst = append(dst, "; Expires="...)
	dst = time.Now().Add(d).UTC().AppendFormat(dst, http.TimeFormat)
	return append(dst, "; Path=/"...)
}

// responseSetsCookie reports whether the target's response sets cookie name.
func (c *ClientConn) responseSetsCookie(name string) bool {
	h := &c.resp
	for i := range h.Fields {
		if h.Fields[i].Kind != http1.FieldSetCookie {
			continue
		}
		if setsCookie(h.Fields[i].Value.Of(h.Raw), name) {
			return true
		}
	}
	return false
}

// setsCookie reports whether a Set-Cookie value sets cookie name.
func setsCookie(setCookie []byte, name string) bool {
	return len(setCookie) > len(name) && setCookie[len(name)] == '=' && string(setCookie[:len(name)]) == name
}

// logRequest writes the access-log line of the request just served, when
// an access log is open. The line is built in c.buf: no allocation.
func (c *ClientConn) logRequest(rt *Route) {
	a := c.l.AccessLog()
	if a == nil {
		return
	}
	c.ex.received += int64(len(c.req.Raw))
	line := accessLine{scheme: rt.Scheme, listener: c.l.Name(), client: bstr(c.clientIP),
		request: bstr(c.req.Raw[c.req.Line[0].Start:c.req.Line[2].End]), userAgent: bstr(c.req.Field(http1.FieldUserAgent)),
		tlsProtocol: c.tlsProtocol, tlsCipher: c.tlsCipher, requestID: bstr(c.ids.current)}
	c.buf = line.append(c.buf[:0], &c.ex, time.Now())
	a.WriteLine(c.buf)
}

// accessLine is what an access-log line tells beside the exchange: views of
// the request, valid while it is served.
type accessLine struct {
	scheme, listener, client, request, userAgent, tlsProtocol, tlsCipher, requestID string
}

// append appends the JSON line of exchange e, which ended at end.
func (f *accessLine) append(b []byte, e *exchange, end time.Time) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, f.scheme...)
	b = append(b, `","time":"`...)
	b = end.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","listener":`...)
	b = appendJSONString(b, f.listener)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, f.client)
	if e.target != nil {
		b = append(b, `,"target":`...)
		b = appendJSONString(b, e.target.ID)
		b = append(b, `,"target_address":`...)
		b = appendJSONString(b, e.target.Address)
	}
	b = append(b, `,"request_processing_time":`...)
	b = appendSeconds(b, e.start, e.sentToTarget)
	b = append(b, `,"target_processing_time":`...)
	b = appendSeconds(b, e.sentToTarget, e.headReceived)
	b = append(b, `,"response_processing_time":`...)
	b = appendSeconds(b, e.headReceived, end)
	b = append(b, `,"elb_status_code":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"target_status_code":`...)
	b = strconv.AppendInt(b, int64(e.targetStatus), 10)
	b = append(b, `,"received_bytes":`...)
	b = strconv.AppendInt(b, e.received, 10)
	b = append(b, `,"sent_bytes":`...)
	b = strconv.AppendInt(b, e.sent, 10)
	b = append(b, `,"request":`...)
	b = appendJSONString(b, f.request)
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, f.userAgent)
	if f.tlsProtocol != "" {
		b = append(b, `,"tls_protocol":`...)
		b = appendJSONString(b, f.tlsProtocol)
		b = append(b, `,"tls_cipher":`...)
		b = appendJSONString(b, f.tlsCipher)
	}
	if e.group != "" {
		b = append(b, `,"group":`...)
		b = appendJSONString(b, e.group)
	}
	b = append(b, `,"matched_rule_priority":`...)
	b = strconv.AppendInt(b, int64(e.priority), 10)
	b = append(b, `,"actions_executed":"`...)
	switch {
	case e.status == 463:
	case len(e.redirectURL) > 0:
		b = append(b, "redirect"...)
	case e.group != "":
		b = append(b, "forward"...)
	default:
		b = append(b, "fixed-response"...)
	}
	b = append(b, '"')
	if len(e.redirectURL) > 0 {
		b = append(b, `,"redirect_url":`...)
		b = appendJSONString(b, bstr(e.redirectURL))
	}
	if e.reason != reasonNone {
		b = append(b, `,"error_reason":"`...)
		b = append(b, e.reason.String()...)
		b = append(b, '"')
	}
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, f.requestID)
	return append(b, "}\n"...)
}

// appendSeconds appends to-from in seconds, or -1 when either is unknown (as ALB).
func appendSeconds(b []byte, from, to time.Time) []byte {
	if from.IsZero() || to.IsZero() {
		return append(b, "-1"...)
	}
	return strconv.AppendFloat(b, to.Sub(from).Seconds(), 'f', 6, 64)
}

// appendJSONString appends s quoted as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return append(b, '"')
}
