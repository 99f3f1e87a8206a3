package h2front

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/balancer/clock"
	"github.com/berth-lb/berth/balancer/h2conn"
	"github.com/berth-lb/berth/balancer/h2server"
	"github.com/berth-lb/berth/balancer/http1"
	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/rules"
	"github.com/berth-lb/berth/balancer/stats"
)

// One HTTP/2 request (a stream), from routing to its access-log line. The
// decisions are the HTTP/1.1 engine's (rules and actions, 463, stickiness,
// request IDs, X-Forwarded-For modes, error pages, the log line); what
// differs is that request and answer are an h2server.Stream's and that the
// streams of one connection run concurrently, so nothing per request lives
// on the connection. Field names are in lower case, as HTTP/2 has them.

// h2Request is one stream being served.
type h2Request struct {
	l  Listener
	hc *H2Conn
	rt *httpfront.Route
	s  *h2server.Stream
	r  *h2server.Request
	ex httpfront.Exchange
	// lines shows the request's fields to the rules' header conditions.
	lines     fieldLines
	requestID string
	// wantsJSON is true when Accept names application/json: error pages in JSON.
	wantsJSON bool
	// idBuf holds a request ID berth made, without an allocation of its own.
	idBuf [48]byte
}

// serveStream routes and answers one HTTP/2 request.
func serveStream(l Listener, hc *H2Conn, s *h2server.Stream) {
	hc.active.Add(1)
	defer hc.active.Add(-1)
	q := h2Requests.Get().(*h2Request)
	defer h2Requests.Put(q)
	*q = h2Request{l: l, hc: hc, rt: l.Route(), s: s, r: &s.Request}
	q.lines.fields = s.Request.Fields
	q.ex.Reset(time.Now())
	q.requestID, _ = q.r.Field("x-request-id")
	if !httpfront.ValidRequestID(sbytes(q.requestID)) {
		q.requestID = httpfront.Bstr(httpfront.AppendRequestID(q.idBuf[:0], hc.requestIDPrefix, hc.requestIDs.Add(1)))
	}
	for _, f := range q.r.Fields {
		if f.Name == "accept" {
			q.wantsJSON = q.wantsJSON || httpfront.ContainsFold(sbytes(f.Value), "application/json")
		}
	}
	// Deferred: a response that breaks mid-body ends the stream by panic.
	defer q.log()
	q.serve()
}

// h2Requests are reused: nothing holds one once its stream is served (the
// request ID in its idBuf is copied wherever it goes on).
var h2Requests = sync.Pool{New: func() any { return new(h2Request) }}

// sbytes views s as bytes without copying, for reading only.
func sbytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (q *h2Request) serve() {
	r, rt, start := q.r, q.rt, q.ex.Start
	if !h2conn.Downgradable(r.Method, r.Path, r.Authority) {
		q.fail(400, stats.ReasonBadRequest)
		return
	}
	host := r.Authority
	// Without a colon there is no port, and SplitHostPort's error (an
	// allocation) is not worth making.
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	path, query, _ := strings.Cut(r.Path, "?")
	if rt.RedirectPort != 0 {
		q.ex.RedirectURL = httpfront.AppendHTTPSLocation(nil, sbytes(host), sbytes(path), sbytes(query), rt.RedirectPort)
		q.redirect(http.StatusMovedPermanently)
		rt.Fallback.Stats.Observe(http.StatusMovedPermanently, time.Since(start))
		return
	}
	if q.fieldTooLong() {
		q.fail(431, stats.ReasonHeadersTooLarge)
		return
	}
	if q.forwardedFor() > httpfront.MaxForwardedFor {
		q.fail(463, stats.ReasonTooManyForwardedFor)
		return
	}
	matchPath := path
	if normal, changed := rules.NormalizePath(nil, path); changed {
		matchPath = string(normal)
	}
	req := rules.Request{Host: rules.NormalizeHost(host), Path: matchPath, Method: r.Method, Query: query,
		Headers: &q.lines, Source: q.hc.source}
	act := &rt.Fallback
	if i := rt.Table.MatchRequest(&req); i >= 0 {
		act = &rt.Actions[i]
	}
	q.ex.Priority = act.Priority
	switch {
	case act.Redirect != nil:
		parts := httpfront.RedirectParts{Protocol: []byte(rt.Scheme), Host: sbytes(host), Port: q.l.ForwardedPort(),
			Path: sbytes(strings.TrimPrefix(path, "/")), Query: sbytes(query)}
		q.ex.RedirectURL = act.Redirect.AppendLocation(nil, &parts)
		q.redirect(act.Redirect.Status)
		act.Stats.Observe(act.Redirect.Status, time.Since(start))
	case act.Group == nil:
		q.ex.Status, q.ex.Sent = act.Code, writePage(q.s, act.Code, act.FixedPage)
		act.Stats.Observe(act.Code, time.Since(start))
	default:
		var groupToken []byte
		if act.GroupStickiness > 0 {
			groupToken = q.cookie(httpfront.StickyCookieGroup)
		}
		g, stats := act.ChooseGroup(&q.ex, groupToken)
		q.ex.Status = q.forward(g)
		stats.Observe(q.ex.Status, time.Since(start))
	}
}

// fieldTooLong reports whether the request target or a header field is
// longer than the HTTP/1.1 engine lets a line be (16 KiB), which its
// request line and header lines would be.
func (q *h2Request) fieldTooLong() bool {
	if len(q.r.Path) > http1.MaxLineBytes { // the :path as the client sent it
		return true
	}
	for _, f := range q.r.Fields {
		if len(f.Name)+2+len(f.Value) > http1.MaxLineBytes {
			return true
		}
	}
	return false
}

// forwardedFor counts the addresses of the request's X-Forwarded-For lines.
func (q *h2Request) forwardedFor() int {
	n := 0
	for _, f := range q.r.Fields {
		if f.Name == "x-forwarded-for" {
			n += 1 + strings.Count(f.Value, ",")
		}
	}
	return n
}

// cookie returns the value of the request's cookie name, or nil. The
// server joined the request's cookie fields into one.
func (q *h2Request) cookie(name string) []byte {
	if v, ok := q.r.Field("cookie"); ok {
		return httpfront.CookieValue(sbytes(v), name)
	}
	return nil
}

// redirect answers with ex.RedirectURL as the location.
func (q *h2Request) redirect(status int) {
	q.s.AddField("location", httpfront.Bstr(q.ex.RedirectURL))
	q.s.WriteHeader(status)
	q.ex.Status = status
}

// fail answers with the balancer's error page for code, in JSON when the
// client asked for it, and counts reason.
func (q *h2Request) fail(code int, reason stats.ErrorReason) int {
	q.l.CountError(reason)
	page := httpfront.ErrorBodies[code][0]
	if q.wantsJSON {
		page = httpfront.ErrorBodies[code][1]
	}
	q.ex.Status, q.ex.Reason, q.ex.Sent = code, reason, writePage(q.s, code, page)
	return code
}

// fieldLines shows an HTTP/2 request's fields to the rule conditions.
type fieldLines struct{ fields []hpack.HeaderField }

func (h *fieldLines) NumHeaders() int { return len(h.fields) }

func (h *fieldLines) HeaderAt(i int) (name, value []byte) {
	return sbytes(h.fields[i].Name), sbytes(h.fields[i].Value)
}

// writePage answers with one of the balancer's own pages and returns the
// length of its body.
func writePage(s *h2server.Stream, status int, p httpfront.Page) int64 {
	for _, v := range p.ContentType {
		s.AddField("content-type", v)
	}
	s.WriteHeader(status)
	n, _ := s.Write(p.Body)
	return int64(n)
}

// forward sends the request to a target of g and streams the answer back.
// A request is tried again on another target only when connecting failed,
// since then nothing of it was sent. It returns the status the client got.
func (q *h2Request) forward(g *pool.Group) int {
	// gRPC needs HTTP/2 end to end for its trailers and full-duplex streams.
	contentType, _ := q.r.Field("content-type")
	grpc := strings.HasPrefix(contentType, "application/grpc")
	var stickyToken []byte
	if g.Sticky != nil {
		stickyToken = q.cookie(g.Sticky.Cookie)
	}
	var triedArray [pool.MaxAttempts]*pool.Target
	tried := triedArray[:0]
	reason := stats.ReasonNoTarget
	for range pool.MaxAttempts {
		t := q.ex.Pick(g, tried, q.hc.sourceHash, stickyToken)
		if t == nil {
			break
		}
		tried = append(tried, t)
		code, why, retry := q.attempt(g, t, grpc, g.HasAlternative(tried))
		switch {
		case why == httpfront.ReasonNone:
			if code >= 500 {
				t.Passive.Failed(time.Now())
			} else {
				t.Passive.Succeeded()
			}
			return code
		case retry:
			t.Failed(why)
			reason = why
			continue
		default:
			t.Failed(why)
			return q.fail(httpfront.ReasonStatus(why), why)
		}
	}
	return q.fail(httpfront.ReasonStatus(reason), reason)
}

// attempt is one try on t, in flight for its whole length, also when a
// response that broke mid-body ends the handler by panic. alternatives tells
// whether another target could take the request (see pool.Dial).
func (q *h2Request) attempt(g *pool.Group, t *pool.Target, grpc, alternatives bool) (int, stats.ErrorReason, bool) {
	t.InFlight.Add(1)
	defer t.InFlight.Add(-1)
	start := clock.Mono()
	defer func() { t.Latency.Observe(clock.Mono() - start) }()
	t.Requests.Add(1)
	if grpc {
		return q.tryHTTP2(g, t, q.l.Transport(g))
	}
	return q.tryHTTP1(g, t, alternatives, start)
}

// countedBody is the client's request body as sent to a target: it counts
// what was read, and a failed try does not close it, since the next try may
// still send it. At its end it gives the request's trailers to trailer,
// where the HTTP/2 client toward the target reads them. The HTTP/2 client
// reads it on a goroutine of its own, which may outlast the try: the count
// is its own, not the reused h2Request's.
type countedBody struct {
	s       *h2server.Stream
	n       *atomic.Int64
	trailer http.Header
}

func (b countedBody) Read(p []byte) (int, error) {
	n, err := b.s.Request.Body.Read(p)
	b.n.Add(int64(n))
	if err == io.EOF && b.trailer != nil {
		for _, f := range b.s.Trailers() {
			k := http.CanonicalHeaderKey(f.Name)
			if _, declared := b.trailer[k]; declared {
				b.trailer[k] = append(b.trailer[k], f.Value)
			}
		}
	}
	return n, err
}

func (countedBody) Close() error { return nil }

// targetRequest is the request toward a gRPC target t, for net/http's
// HTTP/2 client: the client's fields without hop-by-hop ones (but TE:
// trailers, which gRPC needs), with X-Forwarded-For (by the listener's
// mode), -Proto, -Port and X-Request-Id.
func (q *h2Request) targetRequest(ctx context.Context, t *pool.Target, received *atomic.Int64) (*http.Request, error) {
	r := q.r
	u, err := url.ParseRequestURI(r.Path)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = "http", t.Address
	h := make(http.Header, len(r.Fields)+4)
	var trailer http.Header
	for _, f := range r.Fields {
		switch {
		case f.Name == "te" && f.Value == "trailers":
			h["Te"] = []string{f.Value}
		case f.Name == "trailer":
			for _, k := range strings.Split(f.Value, ",") {
				if k = strings.TrimSpace(k); k != "" {
					if trailer == nil {
						trailer = http.Header{}
					}
					trailer[http.CanonicalHeaderKey(k)] = nil
				}
			}
		case !droppedRequestField(f.Name):
			k := http.CanonicalHeaderKey(f.Name)
			h[k] = append(h[k], f.Value)
		}
	}
	if xff := q.forwardedForValue(); xff != "" {
		h.Set("X-Forwarded-For", xff)
	}
	h.Set("X-Request-Id", strings.Clone(q.requestID)) // the HTTP/2 client may hold it past the stream
	h.Set("X-Forwarded-Proto", q.rt.Scheme)
	h.Set("X-Forwarded-Port", string(q.l.ForwardedPort()))
	out := &http.Request{Method: r.Method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: h, Host: r.Authority,
		ContentLength: r.ContentLength, Body: http.NoBody, Trailer: trailer}
	if r.ContentLength != 0 {
		out.Body = countedBody{s: q.s, n: received, trailer: trailer}
	}
	return out.WithContext(ctx), nil
}

// tryHTTP2 is one try on target t over HTTP/2. It reports the status sent
// to the client, or a failure reason and whether the request may go to
// another target.
func (q *h2Request) tryHTTP2(g *pool.Group, t *pool.Target, transport http.RoundTripper) (int, stats.ErrorReason, bool) {
	s := q.s
	ctx, cancel := context.WithCancel(context.WithValue(s.Context(), connectTimeoutKey{}, g.ConnectTimeout))
	defer cancel()
	received := new(atomic.Int64)
	// Counted once the try ends (after the body's Close below, as defers go).
	defer func() { q.ex.Received += received.Load() }()
	out, err := q.targetRequest(ctx, t, received)
	if err != nil {
		return q.fail(400, stats.ReasonBadRequest), httpfront.ReasonNone, false
	}
	ex := &h2Exchange{cancel: cancel}
	t.AddStream(ex)
	defer t.RemoveStream(ex)
	timedOut := atomic.Bool{}
	timer := time.AfterFunc(g.ConnectTimeout+g.ResponseTimeout, func() { timedOut.Store(true); cancel() })

	q.ex.SentToTarget = time.Now()
	resp, err := transport.RoundTrip(out)
	timer.Stop()
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return 0, pool.DialFailure(err), true
		}
		if timedOut.Load() || errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, stats.ReasonResponseTimeout, false
		}
		if s.Gone() {
			return httpfront.StatusClientClosed, httpfront.ReasonNone, false // the client went away
		}
		return 0, httpfront.BrokenReason(err), false
	}
	q.ex.HeadReceived, q.ex.TargetStatus = time.Now(), resp.StatusCode
	defer resp.Body.Close()
	// The answer ended the exchange: a client still sending (a gRPC stream
	// that failed early) must not keep the upstream request body open,
	// which would keep resp.Body.Close waiting for it.
	defer s.Request.Body.Close()
	q.writeResponseHeader(resp)
	s.WriteHeader(resp.StatusCode)
	// No idle deadline for gRPC: its streams may rightly stay quiet for
	// long (watches kept alive by pings); a socket that takes nothing is
	// still closed by the server's write bound.
	body := streamWriter{s: s}
	buf := h2CopyBuffers.Get().(*[]byte)
	defer h2CopyBuffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(*buf)
		if n > 0 {
			if _, werr := body.Write((*buf)[:n]); werr != nil {
				return resp.StatusCode, httpfront.ReasonNone, false
			}
			q.ex.Sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The status went out already: the client sees the stream reset.
			panic(http.ErrAbortHandler)
		}
	}
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			s.AddTrailer(k, v)
		}
	}
	return resp.StatusCode, httpfront.ReasonNone, false
}

// streamWriter writes a response body to an HTTP/2 client; every piece
// goes out at once (the server sends what a write gives it). A client that
// takes nothing for the listener's idle timeout gets its stream reset and
// the write fails: a client that stops reading must not hold a handler and
// a target connection for ever.
type streamWriter struct {
	s    *h2server.Stream
	idle time.Duration
	// extendAt is when the next write moves the deadline on: not on every
	// write, since a deadline takes the connection's write lock.
	// With idle 0 there is no deadline.
	extendAt time.Time
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if w.idle > 0 {
		if now := time.Now(); now.After(w.extendAt) {
			w.s.SetWriteDeadline(now.Add(w.idle))
			w.extendAt = now.Add(w.idle / 2)
		}
	}
	return w.s.Write(p)
}

// forwardedForValue is the X-Forwarded-For a target gets by the listener's
// mode: the client's list with the client's address appended, the list as
// it came, or none (""). Several lines are one list (RFC 9110 5.3).
func (q *h2Request) forwardedForValue() string {
	var xff string
	for _, f := range q.r.Fields {
		if f.Name == "x-forwarded-for" {
			if xff == "" {
				xff = f.Value
			} else {
				xff += ", " + f.Value
			}
		}
	}
	switch q.rt.XFF {
	case httpfront.XFFAppend:
		if xff == "" {
			return httpfront.Bstr(q.hc.clientIP)
		}
		return xff + ", " + httpfront.Bstr(q.hc.clientIP)
	case httpfront.XFFPreserve:
		return xff
	}
	return ""
}

// writeResponseHeader copies the target's response header to the client's,
// without hop-by-hop fields, with the stickiness cookies the exchange sets.
func (q *h2Request) writeResponseHeader(resp *http.Response) {
	for k, vs := range resp.Header {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			continue
		}
		for _, v := range vs {
			q.s.AddField(k, v)
		}
	}
	q.addStickyCookies(func(name string) bool {
		return slices.ContainsFunc(resp.Header.Values("Set-Cookie"), func(v string) bool { return httpfront.SetsCookie(sbytes(v), name) })
	})
}

// addStickyCookies adds the stickiness cookies of the exchange to the
// response: the group's, and the target's (for app_cookie only when the
// response sets the application's cookie, which setsCookie tells).
func (q *h2Request) addStickyCookies(setsCookie func(name string) bool) {
	if q.ex.GroupToken != "" {
		q.s.AddField("set-cookie", httpfront.Bstr(httpfront.AppendCookie(nil, httpfront.StickyCookieGroup, q.ex.GroupToken, q.ex.GroupStickiness)))
	}
	s := q.ex.Sticky
	if s == nil || q.ex.StickyToken == "" || s.AppCookie != "" && !setsCookie(s.AppCookie) {
		return
	}
	q.s.AddField("set-cookie", httpfront.Bstr(httpfront.AppendCookie(nil, s.Cookie, q.ex.StickyToken, s.Duration)))
}

// log writes the access-log line of the request, when an access log is open.
func (q *h2Request) log() {
	a := q.l.AccessLog()
	if a == nil {
		return
	}
	r := q.r
	for _, f := range r.Fields {
		q.ex.Received += int64(len(f.Name) + len(f.Value) + 4) // as the header lines of HTTP/1.1
	}
	userAgent, _ := r.Field("user-agent")
	line := httpfront.AccessLine{Scheme: q.rt.Scheme, Listener: q.l.Name(), Client: httpfront.Bstr(q.hc.clientIP),
		Request: r.Method + " " + r.Path + " HTTP/2.0", UserAgent: userAgent, RequestID: q.requestID}
	if r.TLS != nil {
		line.TLSProtocol, line.TLSCipher = tls.VersionName(r.TLS.Version), tls.CipherSuiteName(r.TLS.CipherSuite)
	}
	a.WriteLine(line.Append(nil, &q.ex, time.Now()))
}

// h2Exchange is an HTTP/2 request in flight to a target, registered with the
// target so Terminate can abort it (its client stream is reset).
type h2Exchange struct{ cancel context.CancelFunc }

func (e *h2Exchange) Close() error { e.cancel(); return nil }
func (e *h2Exchange) Terminate()   { e.cancel() }

var h2CopyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
