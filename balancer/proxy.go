package balancer

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// maxAttempts bounds how often one request is tried: the first try and at most
// two more, each only when the target cannot have seen the request.
const maxAttempts = 3

// idleBufferRelease is how long a client connection may sit idle before it
// returns its buffers to the pools: busy keep-alive connections keep theirs,
// thousands of idle ones do not hold 8 KiB each.
const idleBufferRelease = 250 * time.Millisecond

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, connBufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, connBufferSize) }}
)

// clientConn is one client connection and the request it is serving.
type clientConn struct {
	l    *listener
	conn net.Conn
	// src is what br reads: the connection, after a byte read while idle.
	src      prefixReader
	br       *bufio.Reader // nil while the connection idles without buffers
	bw       *bufio.Writer
	clientIP []byte
	// sourceHash is the hash of clientIP that the source_hash algorithm uses.
	sourceHash uint64
	// sourceAddr is clientIP parsed, for source-ip conditions.
	sourceAddr netip.Addr
	// ids makes request IDs for this connection.
	ids requestIDs
	// ex is what the current request's exchange did, for the response
	// head (stickiness cookie) and the access log.
	ex exchange
	// buf is scratch reused for redirects and log lines.
	buf []byte
	// tlsProtocol and tlsCipher name the TLS session of an https
	// connection, for the access log; "" on plain HTTP.
	tlsProtocol, tlsCipher string
	// idle is true while the connection waits for a request: shutdown may close it.
	idle atomic.Bool

	// heads come from a pool with the buffers: nil while the connection
	// idles without them.
	*heads
}

// heads are what a connection parses: the request and response heads and
// the chunk-size and trailer lines (scratch). Their slices grow to the
// largest head seen, so an idle connection gives them back with its buffers.
type heads struct{ req, resp, scratch head }

var headsPool = sync.Pool{New: func() any { return new(heads) }}

// prefixReader reads one held-back byte, then from conn.
type prefixReader struct {
	conn    net.Conn
	pending [1]byte
	has     bool
	// err is the last error reading conn: it tells a client that broke off
	// from a target that did, when a copy between them fails.
	err error
	// headUntil, when set, is when reading a request head ends; else
	// readTimeout, when set, is how long each read of conn may wait. The
	// deadline is set only when a read is due, so a head that came whole
	// with its first byte costs none.
	headUntil   time.Time
	readTimeout time.Duration
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0], p.has = p.pending[0], false
		return 1, nil
	}
	switch {
	case !p.headUntil.IsZero():
		p.conn.SetReadDeadline(p.headUntil)
	case p.readTimeout > 0:
		p.conn.SetReadDeadline(time.Now().Add(p.readTimeout))
	}
	n, err := p.conn.Read(b)
	if err != nil {
		p.err = err
	}
	return n, err
}

// statusClientClosed is what the access log shows for a request whose client
// closed its connection before the answer, as ALB's 460.
const statusClientClosed = 460

func (c *clientConn) acquireBuffers() {
	c.heads = headsPool.Get().(*heads)
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.src)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(c.conn)
}

func (c *clientConn) releaseBuffers() {
	if c.br == nil {
		return
	}
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	headsPool.Put(c.heads)
	c.br, c.bw, c.heads = nil, nil, nil
}

// serve handles requests until the client or the balancer ends the connection.
func (c *clientConn) serve() {
	c.src.conn = c.conn
	c.sourceAddr = peerAddr(c.clientIP)
	if tc, ok := c.conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tlsProtocol, c.tlsCipher = tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
	}
	c.acquireBuffers()
	defer c.releaseBuffers()
	for {
		if c.l.b.shuttingDown.Load() {
			return
		}
		idleTimeout := c.l.route.Load().idleTimeout
		c.src.headUntil, c.src.readTimeout = time.Time{}, 0
		if err := c.awaitRequest(idleTimeout); err != nil {
			// A client that closes or stays silent while idle has nothing in
			// flight: it is closed quietly.
			return
		}
		// The request has begun: the rest of its head must come within the
		// idle timeout (else 408; a head sent a byte at a time does not hold
		// the connection longer), then each read of its body may wait that
		// long.
		start := time.Now()
		c.src.headUntil = start.Add(idleTimeout)
		c.idle.Store(false)
		err := c.req.read(c.br, false)
		c.src.headUntil, c.src.readTimeout = time.Time{}, idleTimeout
		// A client that stops reading its answer holds a goroutine and a
		// target connection: writes to it fail after the idle timeout
		// without progress (roundTrip extends the deadline as the body flows).
		c.conn.SetWriteDeadline(time.Now().Add(idleTimeout))
		if err != nil {
			c.rejectHead(err)
			return
		}
		if !c.handle(c.l.route.Load(), start) {
			return
		}
		c.idle.Store(true)
	}
}

// awaitRequest waits for the first byte of the next request, for at most
// idleTimeout. Past idleBufferRelease it waits without buffers.
func (c *clientConn) awaitRequest(idleTimeout time.Duration) error {
	now := time.Now()
	c.conn.SetReadDeadline(now.Add(min(idleTimeout, idleBufferRelease)))
	_, err := c.br.Peek(1)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || idleTimeout <= idleBufferRelease || c.l.b.shuttingDown.Load() {
		return err // shutdown wakes idle connections with an expired deadline
	}
	c.releaseBuffers()
	c.conn.SetReadDeadline(now.Add(idleTimeout))
	if _, err := c.conn.Read(c.src.pending[:]); err != nil {
		return err
	}
	c.src.has = true
	c.acquireBuffers()
	return nil
}

// rejectHead answers a request whose head could not be read, then the
// connection closes: its framing is lost.
func (c *clientConn) rejectHead(err error) {
	switch {
	case errors.Is(err, errLineTooLong) || errors.Is(err, errHeadTooLarge):
		c.answerError(431, ReasonHeadersTooLarge, false)
		c.lingerBeforeClose()
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.answerError(408, ReasonClientTimeout, false)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		// the client went away mid-head: nobody to answer
	default:
		c.answerError(400, ReasonBadRequest, false)
		c.lingerBeforeClose()
	}
}

// Lingering: how long and how much of what a client still sends is read and
// dropped after an answer that closes the connection.
const (
	lingerTimeout  = 500 * time.Millisecond
	maxLingerBytes = 256 << 10
)

// lingerBeforeClose ends the connection's sending side and reads what the
// client still sends (the rest of a head that was too large), for a moment,
// before the connection closes: closing with unread bytes resets it, and a
// client still writing would lose the answer (RFC 9112 9.6).
func (c *clientConn) lingerBeforeClose() {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, c.conn, maxLingerBytes)
}

// answerError writes one of the balancer's own error pages, in JSON when the
// client's Accept asks for it, and counts it.
func (c *clientConn) answerError(code int, reason ErrorReason, keep bool) {
	c.l.errors[reason].Add(1)
	page := errorPage(code, keep)
	if c.req.wantsJSON {
		page = jsonErrorPage(code, keep)
	}
	c.ex.reason, c.ex.sent = reason, int64(len(page))
	// The error may come late in the exchange (a body that stalled, a slow
	// target): the page gets its own time to go out.
	c.conn.SetWriteDeadline(time.Now().Add(c.l.route.Load().idleTimeout))
	c.bw.Write(page)
	c.bw.Flush()
}

// bstr views bytes of a head as a string without copying, for matching only:
// the string must not outlive the head's next read.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// handle routes and answers one request; it reports whether the client
// connection may carry another one.
func (c *clientConn) handle(rt *route, start time.Time) bool {
	c.ex.reset(start)
	c.requestID()
	defer c.logRequest(rt)
	if rt.redirectPort != 0 {
		c.ex.status = 301
		return c.redirectToHTTPS(rt, start)
	}
	if c.req.forwardedFor > maxForwardedFor {
		c.ex.status = 463
		c.answerError(463, ReasonTooManyForwardedFor, false)
		return false
	}
	act := c.matchRequest(rt)
	c.ex.priority = act.priority
	if act.group == nil {
		// A fixed response or a redirect: read and drop the request body so
		// the next request on this connection starts where it should.
		if err := c.discardRequestBody(); err != nil {
			return false
		}
		c.conn.SetWriteDeadline(time.Now().Add(rt.idleTimeout))
		keep := c.req.keepAlive()
		page := act.fixed
		if act.redirect != nil {
			page = c.redirect(act.redirect, rt, keep)
		}
		c.ex.status, c.ex.sent = act.code, int64(len(page))
		c.bw.Write(page)
		err := c.bw.Flush()
		act.stats.observe(act.code, time.Since(start))
		return err == nil && keep
	}
	if c.req.expect100 {
		// Answer 100 Continue here and drop Expect upstream: the target might
		// not be chosen yet when the client starts waiting.
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if c.bw.Flush() != nil {
			return false
		}
	}
	var groupToken []byte
	if act.groupStickiness > 0 {
		groupToken = c.cookie(StickyCookieGroup)
	}
	g, stats := act.chooseGroup(&c.ex, groupToken)
	code, keep := c.forward(g, rt)
	c.ex.status = code
	stats.observe(code, time.Since(start))
	return keep
}

func (c *clientConn) discardRequestBody() error {
	switch {
	case c.req.chunked:
		_, err := copyChunked(bufio.NewWriterSize(io.Discard, 16), c.br, &c.scratch, nil)
		return err
	case c.req.contentLength > 0:
		_, err := c.br.Discard(int(c.req.contentLength))
		return err
	}
	return nil
}

// attemptResult is how one try of a request ended.
type attemptResult int

const (
	attemptDone      attemptResult = iota // a response went to the client
	attemptRetryable                      // the target cannot have seen the request: try another
	attemptFailed                         // the balancer must answer with an error (or the client is gone)
)

// forward sends the request to a target of g, retrying on another target while
// the failed one cannot have processed it. It returns the status the client got
// and whether the client connection stays open.
func (c *clientConn) forward(g *group, rt *route) (int, bool) {
	var triedArray [maxAttempts]*targetState
	tried := triedArray[:0]
	reason := ReasonNoTarget
	var stickyToken []byte
	if g.sticky != nil {
		stickyToken = c.cookie(g.sticky.cookie)
	}
	for range maxAttempts {
		t := g.pickFor(&c.ex, tried, c.sourceHash, stickyToken)
		if t == nil {
			break
		}
		tried = append(tried, t)
		// In flight from the pick on, dial included: a drain that sees zero
		// in flight must not miss a request still connecting.
		t.inFlight.Add(1)
		uc := t.get()
		if uc == nil {
			var err error
			if uc, err = dialTarget(t, g.connectTimeout); err != nil {
				t.inFlight.Add(-1)
				reason = dialFailure(err)
				t.failed(reason)
				continue
			}
		}
		t.requests.Add(1)
		res, code, keep, why := c.roundTrip(uc, g, rt)
		t.inFlight.Add(-1)
		switch res {
		case attemptDone:
			if code >= 500 {
				t.passive.failed(time.Now())
			} else {
				t.passive.succeeded()
			}
			return code, keep
		case attemptRetryable:
			t.failed(why)
			reason = why
			continue
		default:
			if why == reasonNone {
				return code, false // the client went away or the response broke mid-body
			}
			t.failed(why)
			return c.failWith(why, false), false
		}
	}
	// Nothing of the request body was read: the connection can carry another
	// request only when there was none.
	keep := c.req.keepAlive() && !c.req.chunked && c.req.contentLength <= 0
	return c.failWith(reason, keep), keep
}

// dialFailure classifies a failed connect: a timeout or an unreachable
// host or network says the host is gone.
func dialFailure(err error) ErrorReason {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return ReasonConnectTimeout
	}
	return ReasonConnectFailed
}

// brokenReason tells a connection the target's host stopped acknowledging
// (TCP_USER_TIMEOUT, keep-alive, unreachable: the host or the network is gone)
// from one the target closed or reset.
func brokenReason(err error) ErrorReason {
	if errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return ReasonTargetUnreachable
	}
	return ReasonTargetReset
}

// reasonNone marks a failed attempt that needs no error page.
const reasonNone ErrorReason = -1

// failWith answers the client with the error page of reason and returns its status.
func (c *clientConn) failWith(reason ErrorReason, keep bool) int {
	code := reasonStatus(reason)
	c.answerError(code, reason, keep)
	return code
}

// reasonStatus is the status of the balancer's answer to a forward that failed for reason.
func reasonStatus(reason ErrorReason) int {
	switch reason {
	case ReasonNoTarget:
		return 503
	case ReasonConnectTimeout, ReasonResponseTimeout, ReasonTargetUnreachable:
		return 504
	}
	return 502
}

// roundTrip sends the request on uc and copies the response to the client.
func (c *clientConn) roundTrip(uc *upstreamConn, g *group, rt *route) (res attemptResult, code int, keepClient bool, why ErrorReason) {
	idleTimeout := rt.idleTimeout
	hasBody := c.req.chunked || c.req.contentLength > 0
	method := c.req.first[0].of(c.req.raw)
	// A request may go to another target when the connection ended before one
	// byte of a response arrived, it has no body to replay and its method is
	// idempotent (RFC 9110 9.2.2). That covers a pooled connection the target
	// closed while idle and a target shutting down behind Docker's port proxy,
	// which accepts the connection and then closes it.
	retryable := !hasBody && idempotent(method)

	c.writeRequestHead(uc.bw, rt.xff)
	var err error
	var bodyIn int64
	// The body streams to the target as the client sends it; a client that
	// sends nothing of it for the idle timeout is answered 408 (the read
	// deadline is c.src's).
	c.src.err = nil
	switch {
	case c.req.chunked:
		bodyIn, err = copyChunked(uc.bw, c.br, &c.scratch, nil)
	case c.req.contentLength > 0:
		bodyIn, err = copyN(uc.bw, c.br, c.req.contentLength, nil)
	}
	c.ex.received += bodyIn
	if err != nil && c.src.err != nil {
		// The client's side broke off, not the target's: the target is not
		// blamed (no passive-health failure).
		uc.discard()
		if errors.Is(c.src.err, os.ErrDeadlineExceeded) {
			c.answerError(408, ReasonClientTimeout, false)
			return attemptFailed, 408, false, reasonNone
		}
		return attemptFailed, statusClientClosed, false, reasonNone
	}
	if err == nil {
		err = uc.bw.Flush()
	}
	// bodyCut: the target stopped taking the body, and may have answered
	// already (an early 405 or 413, then a close). That answer goes to the
	// client, whose connection then closes: the rest of its body is unread.
	bodyCut := err != nil && targetAnswered(uc)
	if err != nil && !bodyCut {
		uc.discard()
		if retryable {
			return attemptRetryable, 0, false, brokenReason(err)
		}
		return attemptFailed, 0, false, brokenReason(err)
	}

	c.ex.sentToTarget = time.Now()
	uc.conn.SetReadDeadline(c.ex.sentToTarget.Add(g.responseTimeout))
	for {
		err = c.resp.read(uc.br, true)
		if err != nil {
			uc.discard()
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				return attemptFailed, 0, false, ReasonResponseTimeout
			case retryable && len(c.resp.raw) == 0:
				return attemptRetryable, 0, false, brokenReason(err)
			case errors.Is(err, errBadResponse) || errors.Is(err, errMalformedHead) || errors.Is(err, errBadFraming):
				return attemptFailed, 0, false, ReasonBadResponse
			default:
				return attemptFailed, 0, false, brokenReason(err)
			}
		}
		if c.resp.status == 101 {
			return c.tunnel(uc)
		}
		if c.resp.status >= 200 {
			break
		}
		if c.resp.status != 100 { // 100 was answered already; pass 102, 103 on
			c.bw.Write(c.resp.raw)
		}
	}

	c.ex.targetStatus, c.ex.headReceived = c.resp.status, time.Now()
	if c.ex.headReceived.Sub(c.ex.start) > idleTimeout/2 {
		// The answer came long after the request head (a slow upload, a
		// slow target): the client gets the idle timeout from now to take it.
		c.conn.SetWriteDeadline(c.ex.headReceived.Add(idleTimeout))
	}
	noBody := responseHasNoBody(method, c.resp.status)
	framed := noBody || c.resp.chunked || c.resp.contentLength >= 0
	keepClient = framed && c.req.keepAlive() && !bodyCut
	c.writeResponseHead(keepClient)

	refresh := func() {
		deadline := time.Now().Add(idleTimeout)
		uc.conn.SetReadDeadline(deadline)
		c.conn.SetWriteDeadline(deadline)
	}
	var bodyOut int64
	switch {
	case noBody:
	case c.resp.chunked:
		bodyOut, err = copyChunked(c.bw, uc.br, &c.scratch, refresh)
	case c.resp.contentLength >= 0:
		bodyOut, err = copyN(c.bw, uc.br, c.resp.contentLength, refresh)
	default:
		bodyOut, err = copyUntilEOF(c.bw, uc.br, refresh)
	}
	c.ex.sent = int64(len(c.resp.raw)) + bodyOut
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil || !framed || !c.resp.keepAlive() || c.req.http10 || bodyCut {
		uc.discard()
	} else {
		uc.target.put(uc)
	}
	if bodyCut && err == nil {
		c.lingerBeforeClose()
	}
	if err != nil {
		return attemptFailed, c.resp.status, false, reasonNone
	}
	return attemptDone, c.resp.status, keepClient, 0
}

// earlyAnswerWait is how long a target that stopped taking a request body is
// given to show the answer it may have sent.
const earlyAnswerWait = time.Second

// targetAnswered reports whether a target that stopped taking the request's
// body has sent an answer.
func targetAnswered(uc *upstreamConn) bool {
	uc.conn.SetReadDeadline(time.Now().Add(earlyAnswerWait))
	_, err := uc.br.Peek(1)
	return err == nil
}

// writeRequestHead writes the request line and headers to the target, without
// hop-by-hop headers, with X-Forwarded-For (by mode), -Proto, -Port and
// X-Request-Id.
func (c *clientConn) writeRequestHead(w *bufio.Writer, mode xffMode) {
	h := &c.req
	w.Write(h.raw[h.first[0].start:h.first[2].end])
	w.WriteString("\r\n")
	var xff []byte
	for i := range h.headers {
		hd := &h.headers[i]
		if hd.connectionListed {
			continue
		}
		switch hd.kind {
		case hConnection, hKeepAlive, hProxyConnection, hTE, hExpect, hXForwardedProto, hXForwardedPort, hXRequestID:
			continue
		case hUpgrade:
			if !h.connUpgrade {
				continue
			}
		case hXForwardedFor:
			if xff == nil {
				xff = hd.value.of(h.raw)
			} else {
				// Several X-Forwarded-For lines are one list (RFC 9110 5.3);
				// rare, so the allocation is acceptable.
				xff = append(append(append([]byte(nil), xff...), ", "...), hd.value.of(h.raw)...)
			}
			continue
		}
		w.Write(h.raw[hd.name.start:hd.value.end])
		w.WriteString("\r\n")
	}
	switch {
	case mode == xffAppend:
		w.WriteString("X-Forwarded-For: ")
		if len(xff) > 0 {
			w.Write(xff)
			w.WriteString(", ")
		}
		w.Write(c.clientIP)
		w.WriteString("\r\n")
	case mode == xffPreserve && len(xff) > 0:
		w.WriteString("X-Forwarded-For: ")
		w.Write(xff)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Request-Id: ")
	w.Write(c.ids.current)
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(c.l.forwardedProto)
	w.WriteString("\r\nX-Forwarded-Port: ")
	w.Write(c.l.port)
	if h.connUpgrade {
		w.WriteString("\r\nConnection: Upgrade")
	}
	w.WriteString("\r\n\r\n")
}

// writeResponseHead writes the status line and headers to the client without
// hop-by-hop headers; keepClient decides the Connection header.
func (c *clientConn) writeResponseHead(keepClient bool) {
	h := &c.resp
	w := c.bw
	w.Write(h.raw[h.first[0].start:h.first[2].end])
	w.WriteString("\r\n")
	for i := range h.headers {
		hd := &h.headers[i]
		if hd.connectionListed {
			continue
		}
		switch hd.kind {
		case hConnection, hKeepAlive, hProxyConnection:
			continue
		}
		w.Write(h.raw[hd.name.start:hd.value.end])
		w.WriteString("\r\n")
	}
	c.writeStickyCookie(w)
	switch {
	case !keepClient:
		w.WriteString("Connection: close\r\n")
	case c.req.http10:
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
}

// tunnel hands the connection over to a protocol the target switched to (a
// WebSocket, say): bytes flow both ways until either side closes.
func (c *clientConn) tunnel(uc *upstreamConn) (attemptResult, int, bool, ErrorReason) {
	c.writeResponseHead(true)
	if err := c.bw.Flush(); err != nil {
		uc.discard()
		return attemptFailed, 101, false, reasonNone
	}
	c.conn.SetDeadline(time.Time{})
	c.src.readTimeout = 0 // a tunnel may stay quiet as long as its ends like
	uc.conn.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		io.Copy(c.conn, uc.br)
		c.conn.Close()
		close(done)
	}()
	io.Copy(uc.conn, c.br)
	uc.discard()
	<-done
	return attemptDone, 101, false, 0
}

func copyUntilEOF(dst *bufio.Writer, src *bufio.Reader, refresh func()) (int64, error) {
	n, err := copyN(dst, src, 1<<62, refresh)
	if errors.Is(err, io.EOF) {
		return n, nil
	}
	return n, err
}

// errorPages are the balancer's own answers, rendered once: [code][keep].
var errorPages = map[int][2][]byte{}

var pageNotFound []byte

// page is the body of one of the balancer's own answers with its content
// type, for HTTP/2 streams; HTTP/1.1 connections get it rendered whole
// (errorPages, action.fixed).
type page struct {
	// contentType is the header value, shared by every answer: never changed.
	contentType []string
	body        []byte
}

// errorBodies are the pages of errorPages and jsonErrorPages: [code][json].
var errorBodies = map[int][2]page{}

func init() {
	for _, code := range []int{400, 404, 408, 431, 463, 502, 503, 504} {
		text := statusText(code)
		body := strconv.Itoa(code) + " " + text + "\n"
		head := "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\nContent-Type: " + textPlain + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		errorPages[code] = [2][]byte{[]byte(head + "Connection: close\r\n\r\n" + body), []byte(head + "\r\n" + body)}
		jsonBody := `{"error":"` + text + `","status":` + strconv.Itoa(code) + "}\n"
		jsonPage := "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(jsonBody)) + "\r\n"
		jsonErrorPages[code] = [2][]byte{[]byte(jsonPage + "Connection: close\r\n\r\n" + jsonBody), []byte(jsonPage + "\r\n" + jsonBody)}
		errorBodies[code] = [2]page{{[]string{textPlain}, []byte(body)}, {[]string{"application/json"}, []byte(jsonBody)}}
	}
	pageNotFound = errorPage(404, true)
}

const textPlain = "text/plain; charset=utf-8"

// jsonErrorPages are errorPages for clients that accept application/json.
var jsonErrorPages = map[int][2][]byte{}

// statusText is the reason phrase of code, also for ALB's 463.
func statusText(code int) string {
	if code == 463 {
		return "Too Many Forwarded Addresses"
	}
	return http.StatusText(code)
}

func jsonErrorPage(code int, keep bool) []byte {
	if keep {
		return jsonErrorPages[code][1]
	}
	return jsonErrorPages[code][0]
}

func errorPage(code int, keep bool) []byte {
	if keep {
		return errorPages[code][1]
	}
	return errorPages[code][0]
}

// renderFixed renders a fixed response for HTTP/1.1 and as a page for HTTP/2.
func renderFixed(f *FixedResponse) ([]byte, page) {
	ct := f.ContentType
	if ct == "" {
		ct = textPlain
	}
	raw := []byte("HTTP/1.1 " + strconv.Itoa(f.Status) + " " + http.StatusText(f.Status) + "\r\nContent-Type: " + ct + "\r\nContent-Length: " + strconv.Itoa(len(f.Body)) + "\r\n\r\n" + f.Body)
	return raw, page{contentType: []string{ct}, body: []byte(f.Body)}
}
