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

// Exchange is what happened to one request, kept on its client connection
// and reset per request: the response head reads its stickiness, the access
// log all of it.
type Exchange struct {
	Start, SentToTarget, HeadReceived time.Time
	Status, TargetStatus, Priority    int
	Group                             string
	Target                            *pool.Target
	Sticky                            *pool.Stickiness
	StickyToken                       string
	// GroupToken, when set, goes out in BERTHTG for GroupStickiness.
	GroupToken      string
	GroupStickiness time.Duration
	Reason          stats.ErrorReason
	Received, Sent  int64
	RedirectURL     []byte
}

// Reset starts e over for a request that began at start, keeping
// RedirectURL's buffer.
func (e *Exchange) Reset(start time.Time) {
	*e = Exchange{Start: start, TargetStatus: -1, Reason: ReasonNone, RedirectURL: e.RedirectURL[:0]}
}

// requestIDs makes this connection's request IDs: a random prefix per
// connection and a counter, so a new ID costs no allocation and no syscall.
type requestIDs struct {
	prefix  uint64
	counter uint64
	// buf starts with the prefix in hex and a dash, prefixLen bytes,
	// rendered once: only the counter is rendered per request.
	buf       []byte
	prefixLen int
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
		ids.prefix = NewRequestIDPrefix()
		ids.buf = appendRequestIDPrefix(ids.buf[:0], ids.prefix)
		ids.prefixLen = len(ids.buf)
	}
	ids.counter++
	ids.buf = strconv.AppendUint(ids.buf[:ids.prefixLen], ids.counter, 16)
	ids.current = ids.buf
}

// NewRequestIDPrefix is the random, never zero, part of a connection's request IDs.
func NewRequestIDPrefix() uint64 { return rand.Uint64() | 1 }

// AppendRequestID appends the request ID numbered n under prefix.
func AppendRequestID(dst []byte, prefix, n uint64) []byte {
	return strconv.AppendUint(appendRequestIDPrefix(dst, prefix), n, 16)
}

// appendRequestIDPrefix appends what all IDs under prefix begin with.
func appendRequestIDPrefix(dst []byte, prefix uint64) []byte {
	return append(strconv.AppendUint(dst, prefix, 16), '-')
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
	parts := RedirectParts{Protocol: []byte(rt.Scheme), Host: host, Port: c.forwardedPort, Path: path, Query: c.req.Query()}
	c.ex.RedirectURL = ra.AppendLocation(c.ex.RedirectURL[:0], &parts)
	c.buf = appendRedirectResponse(c.buf[:0], ra.Status, c.ex.RedirectURL, keep)
	return c.buf
}

// Pick picks the target of a request's next try (Group.PickFor) and records
// it for the response's stickiness cookie and the access log.
func (ex *Exchange) Pick(g *pool.Group, tried []*pool.Target, sourceHash uint64, stickyToken []byte) *pool.Target {
	t := g.PickFor(tried, sourceHash, stickyToken)
	if t == nil {
		return nil
	}
	ex.Target = t
	if g.Sticky != nil {
		ex.Sticky, ex.StickyToken = g.Sticky, g.Sticky.Tokens[t]
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
		if v := CookieValue(h.Fields[i].Value.Of(h.Raw), name); v != nil {
			return v
		}
	}
	return nil
}

// CookieValue returns the value of cookie name in one Cookie header value, or nil.
func CookieValue(header []byte, name string) []byte {
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
	if c.ex.GroupToken != "" {
		c.writeCookie(w, StickyCookieGroup, c.ex.GroupToken, c.ex.GroupStickiness)
	}
	s := c.ex.Sticky
	if s == nil || c.ex.StickyToken == "" {
		return
	}
	if s.AppCookie != "" && !c.responseSetsCookie(s.AppCookie) {
		return
	}
	c.writeCookie(w, s.Cookie, c.ex.StickyToken, s.Duration)
}

// writeCookie writes a Set-Cookie header line expiring after d.
func (c *ClientConn) writeCookie(w *bufio.Writer, name, value string, d time.Duration) {
	w.WriteString("Set-Cookie: ")
	c.buf = AppendCookie(c.buf[:0], name, value, d)
	w.Write(c.buf)
	w.WriteString("\r\n")
}

// AppendCookie appends a Set-Cookie value: name=value expiring after d, for every path.
func AppendCookie(dst []byte, name, value string, d time.Duration) []byte {
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
		if SetsCookie(h.Fields[i].Value.Of(h.Raw), name) {
			return true
		}
	}
	return false
}

// SetsCookie reports whether a Set-Cookie value sets cookie name.
func SetsCookie(setCookie []byte, name string) bool {
	return len(setCookie) > len(name) && setCookie[len(name)] == '=' && string(setCookie[:len(name)]) == name
}

// logRequest writes the access-log line of the request just served, when
// an access log is open. The line is built in c.buf: no allocation.
func (c *ClientConn) logRequest(rt *Route) {
	a := c.l.AccessLog()
	if a == nil {
		return
	}
	c.ex.Received += int64(len(c.req.Raw))
	line := AccessLine{Scheme: rt.Scheme, Listener: c.l.Name(), Client: Bstr(c.clientIP),
		Request: Bstr(c.req.Raw[c.req.Line[0].Start:c.req.Line[2].End]), UserAgent: Bstr(c.req.Field(http1.FieldUserAgent)),
		TLSProtocol: c.tlsProtocol, TLSCipher: c.tlsCipher, RequestID: Bstr(c.ids.current)}
	c.buf = line.Append(c.buf[:0], &c.ex, time.Now())
	a.WriteLine(c.buf)
}

// AccessLine is what an access-log line tells beside the exchange: views of
// the request, valid while it is served.
type AccessLine struct {
	Scheme, Listener, Client, Request, UserAgent, TLSProtocol, TLSCipher, RequestID string
}

// Append appends the JSON line of exchange e, which ended at end.
func (f *AccessLine) Append(b []byte, e *Exchange, end time.Time) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, f.Scheme...)
	b = append(b, `","time":"`...)
	b = end.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","listener":`...)
	b = appendJSONString(b, f.Listener)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, f.Client)
	if e.Target != nil {
		b = append(b, `,"target":`...)
		b = appendJSONString(b, e.Target.ID)
		b = append(b, `,"target_address":`...)
		b = appendJSONString(b, e.Target.Address)
	}
	b = append(b, `,"request_processing_time":`...)
	b = appendSeconds(b, e.Start, e.SentToTarget)
	b = append(b, `,"target_processing_time":`...)
	b = appendSeconds(b, e.SentToTarget, e.HeadReceived)
	b = append(b, `,"response_processing_time":`...)
	b = appendSeconds(b, e.HeadReceived, end)
	b = append(b, `,"elb_status_code":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"target_status_code":`...)
	b = strconv.AppendInt(b, int64(e.TargetStatus), 10)
	b = append(b, `,"received_bytes":`...)
	b = strconv.AppendInt(b, e.Received, 10)
	b = append(b, `,"sent_bytes":`...)
	b = strconv.AppendInt(b, e.Sent, 10)
	b = append(b, `,"request":`...)
	b = appendJSONString(b, f.Request)
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, f.UserAgent)
	if f.TLSProtocol != "" {
		b = append(b, `,"tls_protocol":`...)
		b = appendJSONString(b, f.TLSProtocol)
		b = append(b, `,"tls_cipher":`...)
		b = appendJSONString(b, f.TLSCipher)
	}
	if e.Group != "" {
		b = append(b, `,"group":`...)
		b = appendJSONString(b, e.Group)
	}
	b = append(b, `,"matched_rule_priority":`...)
	b = strconv.AppendInt(b, int64(e.Priority), 10)
	b = append(b, `,"actions_executed":"`...)
	switch {
	case e.Status == 463:
	case len(e.RedirectURL) > 0:
		b = append(b, "redirect"...)
	case e.Group != "":
		b = append(b, "forward"...)
	default:
		b = append(b, "fixed-response"...)
	}
	b = append(b, '"')
	if len(e.RedirectURL) > 0 {
		b = append(b, `,"redirect_url":`...)
		b = appendJSONString(b, Bstr(e.RedirectURL))
	}
	if e.Reason != ReasonNone {
		b = append(b, `,"error_reason":"`...)
		b = append(b, e.Reason.String()...)
		b = append(b, '"')
	}
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, f.RequestID)
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
