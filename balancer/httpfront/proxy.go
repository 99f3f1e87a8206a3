package httpfront

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

	"github.com/berth-lb/berth/balancer/clock"
	"github.com/berth-lb/berth/balancer/deadline"
	"github.com/berth-lb/berth/balancer/http1"
	"github.com/berth-lb/berth/balancer/idlepark"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
	"github.com/berth-lb/berth/internal/backstop"
)

// IdleBufferRelease is how long a client connection may sit idle before it
// returns its buffers to the pools and parks with no goroutine (idlepark):
// busy keep-alive connections keep theirs and pay no hand-off, thousands of
// idle ones hold neither 8 KiB of buffers nor a goroutine's stack each.
const IdleBufferRelease = 250 * time.Millisecond

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, pool.ConnBufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, pool.ConnBufferSize) }}
)

// ClientConn is one client connection and the request it is serving.
type ClientConn struct {
	l    Listener
	conn net.Conn
	// draining, forwardedPort and forwardedFields are the listener's, read
	// once per connection: each request reads them.
	draining        *atomic.Bool
	forwardedPort   []byte
	forwardedFields []byte
	// src is what br reads: the connection, after a byte read while idle.
	src prefixReader
	// deadlines are conn's, set only through it (deadline.Coarse).
	deadlines deadline.Coarse
	// above is conn's when it holds bytes read ahead of the socket (a
	// sniffed first line), which a parked socket would not announce.
	above    interface{ Buffered() int }
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
	ex Exchange
	// buf is scratch reused for redirects and log lines.
	buf []byte
	// tlsProtocol and tlsCipher name the TLS session of an https
	// connection, for the access log; "" on plain HTTP.
	tlsProtocol, tlsCipher string
	// idle is true while the connection waits for a request: shutdown may close it.
	idle atomic.Bool
	// idleUntil is when an idle connection that waits without buffers closes.
	idleUntil time.Time
	// spot is where idlepark holds the connection while it is parked.
	spot idlepark.Spot
	// untrack takes the connection out of the listener's sets; detached,
	// once the connection parked, ends its count in the listener (the
	// goroutine that counted it is gone).
	untrack, detached func()

	// heads come from a pool with the buffers: nil while the connection
	// idles without them.
	*heads
}

// heads are what a connection parses: the request and response heads and
// the chunked copier with its trailer section. Their slices grow to the
// largest head seen, so an idle connection gives them back with its buffers.
type heads struct {
	req request
	// matchPath is scratch for the request path in the form rules match.
	matchPath []byte
	resp      http1.Head
	trailers  http1.Head
	chunks    http1.ChunkedCopy
}

var headsPool = sync.Pool{New: func() any {
	h := new(heads)
	h.chunks.Trailers = &h.trailers
	return h
}}

// prefixReader reads one held-back byte, then from conn.
type prefixReader struct {
	conn      net.Conn
	deadlines *deadline.Coarse
	pending   [1]byte
	has       bool
	// err is the last error reading conn: it tells a client that broke off
	// from a target that did, when a copy between them fails.
	err error
	// headUntil, when set, is when reading a request head ends; else
	// readTimeout, when set, is how long each read of conn may wait. The
	// deadline is set only when a read is due, so a head that came whole
	// with its first byte costs none.
	headUntil   time.Time
	readTimeout time.Duration
	// headRead is set when reading a head took a read of conn, that is
	// when time may have passed since the head began.
	headRead bool
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0], p.has = p.pending[0], false
		return 1, nil
	}
	switch {
	case !p.headUntil.IsZero():
		p.deadlines.SetRead(p.conn, p.headUntil)
		p.headRead = true
	case p.readTimeout > 0:
		p.deadlines.ExtendRead(p.conn, time.Now(), p.readTimeout)
	}
	n, err := p.conn.Read(b)
	if err != nil {
		p.err = err
	}
	return n, err
}

// StatusClientClosed is what the access log shows for a request whose client
// closed its connection before the answer, as ALB's 460.
const StatusClientClosed = 460

func (c *ClientConn) acquireBuffers() {
	c.heads = headsPool.Get().(*heads)
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.src)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(c.conn)
}

func (c *ClientConn) releaseBuffers() {
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

// serve handles requests until the client or the balancer ends the
// connection, or the connection parks idle (idlepark): its goroutine ends
// then, and resume goes on with another.
func (c *ClientConn) serve() {
	parked := false
	defer func() {
		if !parked {
			c.end()
		}
	}()
	idleTimeout := c.l.Route().IdleTimeout
	for {
		var err error
		if parked, err = c.awaitRequest(idleTimeout); err != nil || parked {
			// A client that closes or stays silent while idle has nothing in
			// flight: it is closed quietly.
			return
		}
		// The request has begun: the rest of its head must come within the
		// idle timeout (else 408; a head sent a byte at a time does not hold
		// the connection longer), then each read of its body may wait that
		// long.
		start := time.Now()
		c.src.headUntil, c.src.headRead = start.Add(idleTimeout), false
		c.idle.Store(false)
		err = c.req.ReadRequest(c.br)
		c.req.inspect()
		c.src.headUntil, c.src.readTimeout = time.Time{}, idleTimeout
		// A client that stops reading its answer holds a goroutine and a
		// target connection: writes to it fail after the idle timeout
		// without progress (roundTrip extends the deadline as the body flows).
		// A head that came whole with its first byte took no time worth a
		// reading of the clock.
		now := start
		if c.src.headRead {
			now = time.Now()
		}
		c.deadlines.ExtendWrite(c.conn, now, idleTimeout)
		if err != nil {
			c.rejectHead(err)
			return
		}
		if !c.handle(c.l.Route(), start) {
			return
		}
		c.idle.Store(true)
		if c.draining.Load() {
			return
		}
		idleTimeout = c.l.Route().IdleTimeout
	}
}

// end closes the connection and lets the listener forget it.
func (c *ClientConn) end() {
	c.releaseBuffers()
	c.untrack()
	c.conn.Close()
	if c.detached != nil {
		c.detached()
	}
}

// awaitRequest waits for the first byte of the next request, for at most
// idleTimeout. Past IdleBufferRelease it waits without buffers, parked
// (no goroutine) when it can: parked is then true, and the connection is
// resume's.
func (c *ClientConn) awaitRequest(idleTimeout time.Duration) (parked bool, err error) {
	c.src.headUntil, c.src.readTimeout = time.Time{}, 0
	now := time.Now()
	c.deadlines.ExtendRead(c.conn, now, min(idleTimeout, IdleBufferRelease))
	_, err = c.br.Peek(1)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || idleTimeout <= IdleBufferRelease || c.draining.Load() {
		return false, err // shutdown wakes idle connections with an expired deadline
	}
	c.idle.Store(true) // a new connection that sent nothing yet is idle now too
	c.releaseBuffers()
	c.src.err = nil // the timeout above: an idle connection keeps no error
	c.idleUntil = now.Add(idleTimeout)
	if c.park() {
		return true, nil
	}
	return false, c.readFirstByte()
}

// readFirstByte waits until idleUntil for the first byte of a request, and
// takes buffers for it.
func (c *ClientConn) readFirstByte() error {
	c.deadlines.SetRead(c.conn, c.idleUntil)
	if _, err := c.conn.Read(c.src.pending[:]); err != nil {
		return err
	}
	c.src.has = true
	c.acquireBuffers()
	return nil
}

// park hands the idle connection to idlepark until it turns readable or
// idleUntil passes. It parks only a socket whose next bytes nothing holds
// in user space: br is released, a wrapper's read-ahead (h2front's sniffed
// first line) must be empty, and TLS keeps at most part of a record, whose
// rest the socket announces. It reports false when the connection cannot
// park (not a socket, bytes above it, or idlepark failed): it then waits in
// its goroutine.
func (c *ClientConn) park() bool {
	rc := rawConnOf(c.conn)
	if rc == nil || c.above != nil && c.above.Buffered() > 0 {
		return false
	}
	detach := c.detached == nil
	if detach {
		c.detached = c.l.Detach()
	}
	if idlepark.Park(&c.spot, rc, c.idleUntil, c.resume) != nil {
		if detach {
			c.detached()
			c.detached = nil
		}
		return false
	}
	return true
}

// resume goes on with a parked connection, on a goroutine of its own (the
// backstop is its own too): it serves the request that made it readable,
// or ends it (idle timeout, shutdown, closed).
func (c *ClientConn) resume(readable bool) {
	defer backstop.Recover(c.l.Log(), c.l.Panics(), c.conn, "listener", c.l.Name())
	if !readable || c.draining.Load() || c.readFirstByte() != nil {
		c.end()
		return
	}
	c.serve()
}

// rawConnOf is the socket under conn (through TLS and other wrappers that
// name their NetConn), or nil.
func rawConnOf(conn net.Conn) syscall.RawConn {
	for {
		switch x := conn.(type) {
		case syscall.Conn:
			rc, err := x.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		case interface{ NetConn() net.Conn }:
			conn = x.NetConn()
		default:
			return nil
		}
	}
}

// rejectHead answers a request whose head could not be read, then the
// connection closes: its framing is lost.
func (c *ClientConn) rejectHead(err error) {
	switch {
	case errors.Is(err, http1.ErrLineTooLong) || errors.Is(err, http1.ErrHeadTooLarge):
		c.answerError(431, stats.ReasonHeadersTooLarge, false)
		c.lingerBeforeClose()
	case errors.Is(err, http1.ErrNotImplemented):
		c.answerError(501, stats.ReasonNotImplemented, false)
		c.lingerBeforeClose()
	case errors.Is(err, http1.ErrVersion):
		c.answerError(505, stats.ReasonNotImplemented, false)
		c.lingerBeforeClose()
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.answerError(408, stats.ReasonClientTimeout, false)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		// the client went away mid-head: nobody to answer
	default:
		c.answerError(400, stats.ReasonBadRequest, false)
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
func (c *ClientConn) lingerBeforeClose() {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.deadlines.SetRead(c.conn, time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, c.conn, maxLingerBytes)
}

// answerError writes one of the balancer's own error pages, in JSON when the
// client's Accept asks for it, and counts it.
func (c *ClientConn) answerError(code int, reason stats.ErrorReason, keep bool) {
	c.l.CountError(reason)
	page := errorPage(code, keep)
	if c.req.wantsJSON() {
		page = jsonErrorPage(code, keep)
	}
	c.ex.Reason, c.ex.Sent = reason, int64(len(page))
	// The error may come late in the exchange (a body that stalled, a slow
	// target): the page gets its own time to go out.
	c.deadlines.ExtendWrite(c.conn, time.Now(), c.l.Route().IdleTimeout)
	c.bw.Write(page)
	c.bw.Flush()
}

// Bstr views b as a string without copying. The string holds only while b's
// bytes do not change: for a head's bytes, until the head's next read (for
// matching only); for bytes never written again, for good.
func Bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// handle routes and answers one request; it reports whether the client
// connection may carry another one.
func (c *ClientConn) handle(rt *Route, start time.Time) bool {
	c.ex.Reset(start)
	c.requestID()
	defer c.logRequest(rt)
	if rt.RedirectPort != 0 {
		c.ex.Status = 301
		return c.redirectToHTTPS(rt, start)
	}
	if c.req.forwardedFor > MaxForwardedFor {
		c.ex.Status = 463
		c.answerError(463, stats.ReasonTooManyForwardedFor, false)
		return false
	}
	act := c.matchRequest(rt)
	c.ex.Priority = act.Priority
	if act.Group == nil {
		// A fixed response or a redirect: read and drop the request body so
		// the next request on this connection starts where it should.
		if err := c.discardRequestBody(); err != nil {
			return false
		}
		c.deadlines.ExtendWrite(c.conn, time.Now(), rt.IdleTimeout)
		keep := c.keepsAlive()
		page := act.Fixed
		if act.Redirect != nil {
			page = c.redirect(act.Redirect, rt, keep)
		}
		c.ex.Status, c.ex.Sent = act.Code, int64(len(page))
		c.bw.Write(page)
		err := c.bw.Flush()
		act.Stats.Observe(act.Code, time.Since(start))
		return err == nil && keep
	}
	if c.req.Expect100 {
		// Answer 100 Continue here and drop Expect upstream: the target might
		// not be chosen yet when the client starts waiting.
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if c.bw.Flush() != nil {
			return false
		}
	}
	var groupToken []byte
	if act.GroupStickiness > 0 {
		groupToken = c.cookie(StickyCookieGroup)
	}
	g, stats := act.ChooseGroup(&c.ex, groupToken)
	code, keep := c.forward(g, rt)
	c.ex.Status = code
	stats.Observe(code, time.Since(start))
	return keep
}

// discardRequestBody reads and drops the request body, so the next request
// on the connection starts where it should. A body that breaks its framing
// is answered 400 and the connection closes.
func (c *ClientConn) discardRequestBody() error {
	var err error
	switch {
	case c.req.Chunked:
		c.chunks.Dechunk = true
		_, err = c.chunks.Copy(bufio.NewWriterSize(io.Discard, 16), c.br, nil)
	case c.req.ContentLength > 0:
		_, err = c.br.Discard(int(c.req.ContentLength))
	}
	if err != nil && c.src.err == nil {
		c.answerError(400, stats.ReasonBadRequest, false)
		c.lingerBeforeClose()
	}
	return err
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
func (c *ClientConn) forward(g *pool.Group, rt *Route) (int, bool) {
	var triedArray [pool.MaxAttempts]*pool.Target
	tried := triedArray[:0]
	reason := stats.ReasonNoTarget
	var stickyToken []byte
	if g.Sticky != nil {
		stickyToken = c.cookie(g.Sticky.Cookie)
	}
	for range pool.MaxAttempts {
		t := c.ex.Pick(g, tried, c.sourceHash, stickyToken)
		if t == nil {
			break
		}
		tried = append(tried, t)
		res, code, keep, why := c.attempt(t, g, rt, g.HasAlternative(tried))
		switch res {
		case attemptDone:
			if code >= 500 {
				t.Passive.Failed(time.Now())
			} else {
				t.Passive.Succeeded()
			}
			return code, keep
		case attemptRetryable:
			t.Failed(why)
			reason = why
			continue
		default:
			if why == ReasonNone {
				return code, false // the client went away or the response broke mid-body
			}
			t.Failed(why)
			return c.failWith(why, false), false
		}
	}
	// Nothing of the request body was read: the connection can carry another
	// request only when there was none.
	keep := c.keepsAlive() && !c.req.Chunked && c.req.ContentLength <= 0
	return c.failWith(reason, keep), keep
}

// attempt is one try of the request on t. It is in flight from the pick on,
// dial included: a drain that sees zero in flight must not miss a request
// still connecting. Should a bug panic mid-way (the backstop then ends the
// client connection), the try stops counting in flight and its target
// connection is closed, so neither leaks. alternatives tells whether another
// target could take the request (see pool.Dial).
func (c *ClientConn) attempt(t *pool.Target, g *pool.Group, rt *Route, alternatives bool) (res attemptResult, code int, keep bool, why stats.ErrorReason) {
	t.InFlight.Add(1)
	defer t.InFlight.Add(-1)
	start := clock.Mono()
	defer func() { t.Latency.Observe(clock.Mono() - start) }()
	uc := t.Get(start)
	if uc == nil {
		var err error
		if uc, err = pool.Dial(t, g.ConnectTimeout, alternatives); err != nil {
			return attemptRetryable, 0, false, pool.DialFailure(err) // nothing was sent
		}
	}
	t.Requests.Add(1)
	finished := false
	defer CloseUnfinished(uc, &finished)
	res, code, keep, why = c.roundTrip(uc, g, rt)
	finished = true
	return res, code, keep, why
}

// CloseUnfinished closes a target connection whose exchange did not finish:
// a panic left it in an unknown state.
func CloseUnfinished(uc *pool.Conn, finished *bool) {
	if !*finished {
		uc.Discard()
	}
}

// BrokenReason tells a connection the target's host stopped acknowledging
// (TCP_USER_TIMEOUT, keep-alive, unreachable: the host or the network is gone)
// from one the target closed or reset.
func BrokenReason(err error) stats.ErrorReason {
	if errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return stats.ReasonTargetUnreachable
	}
	return stats.ReasonTargetReset
}

// ReasonNone marks a failed attempt that needs no error page.
const ReasonNone stats.ErrorReason = -1

// failWith answers the client with the error page of reason and returns its status.
func (c *ClientConn) failWith(reason stats.ErrorReason, keep bool) int {
	code := ReasonStatus(reason)
	c.answerError(code, reason, keep)
	return code
}

// ReasonStatus is the status of the balancer's answer to a forward that failed for reason.
func ReasonStatus(reason stats.ErrorReason) int {
	switch reason {
	case stats.ReasonNoTarget:
		return 503
	case stats.ReasonConnectTimeout, stats.ReasonResponseTimeout, stats.ReasonTargetUnreachable:
		return 504
	}
	return 502
}

// roundTrip sends the request on uc and copies the response to the client.
func (c *ClientConn) roundTrip(uc *pool.Conn, g *pool.Group, rt *Route) (res attemptResult, code int, keepClient bool, why stats.ErrorReason) {
	idleTimeout := rt.IdleTimeout
	hasBody := c.req.Chunked || c.req.ContentLength > 0
	method := c.req.Method()
	// A request may go to another target when the connection ended before one
	// byte of a response arrived, it has no body to replay and its method is
	// idempotent (RFC 9110 9.2.2). That covers a pooled connection the target
	// closed while idle and a target shutting down behind Docker's port proxy,
	// which accepts the connection and then closes it.
	retryable := !hasBody && Idempotent(method)

	if retryable {
		// Awaited from before the request goes out: a host found lost the
		// moment the target has it must still move it elsewhere.
		uc.Awaiting.Store(pool.AwaitHead)
	}
	c.writeRequestHead(uc.Bw, rt.XFF)
	var err error
	var bodyIn int64
	// The body streams to the target as the client sends it; a client that
	// sends nothing of it for the idle timeout is answered 408 (the read
	// deadline is c.src's).
	c.src.err = nil
	switch {
	case c.req.Chunked:
		c.chunks.Dechunk = false
		bodyIn, err = c.chunks.Copy(uc.Bw, c.br, nil)
	case c.req.ContentLength > 0:
		bodyIn, err = http1.CopyN(uc.Bw, c.br, c.req.ContentLength, nil)
	}
	c.ex.Received += bodyIn
	if err != nil && (c.src.err != nil || BrokeFraming(err)) {
		// The client's side broke off or broke its body's framing, not the
		// target's: the target is not blamed (no passive-health failure).
		uc.Discard()
		switch {
		case c.src.err == nil:
			c.answerError(400, stats.ReasonBadRequest, false)
			c.lingerBeforeClose()
			return attemptFailed, 400, false, ReasonNone
		case errors.Is(c.src.err, os.ErrDeadlineExceeded):
			c.answerError(408, stats.ReasonClientTimeout, false)
			return attemptFailed, 408, false, ReasonNone
		}
		return attemptFailed, StatusClientClosed, false, ReasonNone
	}
	if err == nil {
		err = uc.Bw.Flush()
	}
	// bodyCut: the target stopped taking the body, and may have answered
	// already (an early 405 or 413, then a close). That answer goes to the
	// client, whose connection then closes: the rest of its body is unread.
	bodyCut := err != nil && TargetAnswered(uc)
	if err != nil && !bodyCut {
		uc.Discard()
		if retryable {
			return attemptRetryable, 0, false, BrokenReason(err)
		}
		return attemptFailed, 0, false, BrokenReason(err)
	}
	c.ex.SentToTarget = time.Now()
	uc.Deadlines.ExtendRead(uc.Conn, c.ex.SentToTarget, g.ResponseTimeout)
	for {
		err = c.resp.ReadResponse(uc.Br)
		if uc.Awaiting.Swap(pool.AwaitNone) == pool.AwaitAbandoned {
			// The target's host was found lost while the answer was
			// awaited: the request goes to another target now.
			uc.Discard()
			return attemptRetryable, 0, false, stats.ReasonTargetUnreachable
		}
		if err != nil {
			uc.Discard()
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				return attemptFailed, 0, false, stats.ReasonResponseTimeout
			case retryable && len(c.resp.Raw) == 0:
				return attemptRetryable, 0, false, BrokenReason(err)
			case BrokeFraming(err):
				return attemptFailed, 0, false, stats.ReasonBadResponse
			default:
				return attemptFailed, 0, false, BrokenReason(err)
			}
		}
		if c.resp.Status == 101 {
			if !c.req.upgrade || !switchesTo(&c.resp, "websocket") {
				// A switch nobody asked for would turn the connection into
				// a tunnel that no rule sees again.
				uc.Discard()
				return attemptFailed, 0, false, stats.ReasonBadResponse
			}
			return c.tunnel(uc, idleTimeout)
		}
		if c.resp.Status >= 200 {
			break
		}
		// 100 was answered already; 102 and 103 go on, to HTTP/1.1 clients
		// only (RFC 9110 15.2).
		if c.resp.Status != 100 && !c.req.HTTP10 {
			c.writeResponseHead(true, false)
		}
	}

	c.ex.TargetStatus, c.ex.HeadReceived = c.resp.Status, time.Now()
	if c.ex.HeadReceived.Sub(c.ex.Start) > idleTimeout/2 {
		// The answer came long after the request head (a slow upload, a
		// slow target): the client gets the idle timeout from now to take it.
		c.deadlines.ExtendWrite(c.conn, c.ex.HeadReceived, idleTimeout)
	}
	noBody := http1.ResponseHasNoBody(method, c.resp.Status)
	framed := noBody || c.resp.Chunked || c.resp.ContentLength >= 0
	// An HTTP/1.0 client cannot read chunks: it gets the data up to the close.
	dechunk := c.resp.Chunked && c.req.HTTP10 && !noBody
	keepClient = framed && !dechunk && c.keepsAlive() && !bodyCut
	c.writeResponseHead(keepClient, dechunk)

	refresh := func() {
		now := time.Now()
		uc.Deadlines.ExtendRead(uc.Conn, now, idleTimeout)
		c.deadlines.ExtendWrite(c.conn, now, idleTimeout)
	}
	var bodyOut int64
	switch {
	case noBody:
	case c.resp.Chunked:
		c.chunks.Dechunk = dechunk
		bodyOut, err = c.chunks.Copy(c.bw, uc.Br, refresh)
	case c.resp.ContentLength >= 0:
		bodyOut, err = http1.CopyN(c.bw, uc.Br, c.resp.ContentLength, refresh)
	default:
		bodyOut, err = http1.CopyUntilEOF(c.bw, uc.Br, refresh)
	}
	c.ex.Sent = int64(len(c.resp.Raw)) + bodyOut
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil || !framed || !c.resp.KeepsAlive() || c.req.HTTP10 || bodyCut || AmbiguousBody(&c.resp, method) {
		uc.Discard()
	} else {
		uc.VerifyBeforeReuse = noBody
		uc.Target.Put(uc)
	}
	if bodyCut && err == nil {
		c.lingerBeforeClose()
	}
	if err != nil {
		// What came of the response goes out: the client sees it broken off
		// (a chunked body without its last chunk, a short body).
		c.bw.Flush()
		return attemptFailed, c.resp.Status, false, ReasonNone
	}
	return attemptDone, c.resp.Status, keepClient, 0
}

// BrokeFraming reports whether err says a peer broke HTTP/1.1's grammar or
// framing, rather than a read or write failing.
func BrokeFraming(err error) bool {
	for _, e := range [...]error{http1.ErrMalformed, http1.ErrBadFraming, http1.ErrBadChunk, http1.ErrVersion,
		http1.ErrNotImplemented, http1.ErrLineTooLong, http1.ErrHeadTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// AmbiguousBody reports whether a response that has no body by rule
// announced one anyway (a 1xx or 204 with a length or chunks, a chunked
// 304): what the target sends next may be that body, so its connection
// carries no other request.
func AmbiguousBody(resp *http1.Head, method []byte) bool {
	if string(method) == "HEAD" || resp.Status >= 200 && resp.Status != 204 && resp.Status != 304 {
		return false
	}
	return resp.Chunked || resp.ContentLength > 0 && resp.Status != 304
}

// switchesTo reports whether a 101 response switches to protocol, as its
// Upgrade field and Connection: upgrade say.
func switchesTo(resp *http1.Head, protocol string) bool {
	return resp.Upgrade && http1.EqualFold(resp.Field(http1.FieldUpgrade), protocol)
}

// earlyAnswerWait is how long a target that stopped taking a request body is
// given to show the answer it may have sent.
const earlyAnswerWait = time.Second

// TargetAnswered reports whether a target that stopped taking the request's
// body has sent an answer.
func TargetAnswered(uc *pool.Conn) bool {
	uc.Deadlines.SetRead(uc.Conn, time.Now().Add(earlyAnswerWait))
	_, err := uc.Br.Peek(1)
	return err == nil
}

var hostField = []byte("Host")

// writeRequestHead writes the request line and fields to the target, in
// canonical form, without hop-by-hop fields, with X-Forwarded-For (by
// mode), -Proto, -Port and X-Request-Id.
func (c *ClientConn) writeRequestHead(w *bufio.Writer, mode XFFMode) {
	h := &c.req
	h.WriteRequestLine(w)
	if h.AbsoluteForm {
		// The target reads the host berth routed on (RFC 9112 3.2.2).
		http1.WriteField(w, hostField, h.Host.Of(h.Raw))
	}
	var xff []byte
	for i := range h.Fields {
		f := &h.Fields[i]
		if f.Hop {
			continue
		}
		switch f.Kind {
		case http1.FieldConnection, http1.FieldKeepAlive, http1.FieldProxyConnection, http1.FieldTE, http1.FieldExpect,
			http1.FieldXForwardedProto, http1.FieldXForwardedPort, http1.FieldXRequestID:
			continue
		case http1.FieldUpgrade:
			if !h.upgrade {
				continue
			}
		case http1.FieldXForwardedFor:
			if xff == nil {
				xff = f.Value.Of(h.Raw)
			} else {
				// Several X-Forwarded-For lines are one list (RFC 9110 5.3);
				// rare, so the allocation is acceptable.
				xff = append(append(append([]byte(nil), xff...), ", "...), f.Value.Of(h.Raw)...)
			}
			continue
		}
		h.WriteFieldLine(w, f)
	}
	switch {
	case mode == XFFAppend:
		w.WriteString("X-Forwarded-For: ")
		if len(xff) > 0 {
			w.Write(xff)
			w.WriteString(", ")
		}
		w.Write(c.clientIP)
		w.WriteString("\r\n")
	case mode == XFFPreserve && len(xff) > 0:
		w.WriteString("X-Forwarded-For: ")
		w.Write(xff)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Request-Id: ")
	w.Write(c.ids.current)
	w.WriteString("\r\n")
	w.Write(c.forwardedFields)
	if h.upgrade {
		w.WriteString("Connection: Upgrade\r\n")
	}
	w.WriteString("\r\n")
}

// writeResponseHead writes the status line and fields to the client in
// canonical form, without hop-by-hop fields; keepClient decides the
// Connection field of a final response, dechunk drops Transfer-Encoding for
// a body sent unframed.
func (c *ClientConn) writeResponseHead(keepClient, dechunk bool) {
	h := &c.resp
	w := c.bw
	h.WriteStatusLine(w)
	// 1xx and 204 have no body: a length or chunks they announce is dropped.
	noFraming := h.Status < 200 || h.Status == 204
	for i := range h.Fields {
		f := &h.Fields[i]
		if f.Hop {
			continue
		}
		switch f.Kind {
		case http1.FieldConnection, http1.FieldKeepAlive, http1.FieldProxyConnection:
			continue
		case http1.FieldTransferEncoding:
			if dechunk || noFraming {
				continue
			}
		case http1.FieldContentLength:
			if noFraming {
				continue
			}
		}
		h.WriteFieldLine(w, f)
	}
	switch {
	case h.Status == 101:
		w.WriteString("Connection: Upgrade\r\n\r\n")
		return
	case h.Status < 200:
		w.WriteString("\r\n")
		return
	}
	c.writeStickyCookie(w)
	switch {
	case !keepClient:
		w.WriteString("Connection: close\r\n")
	case c.req.HTTP10:
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
}

// tunnel hands the connection over to the protocol the target switched to (a
// WebSocket): bytes flow both ways until either side closes, or neither
// sends anything for the listener's idle timeout.
func (c *ClientConn) tunnel(uc *pool.Conn, idleTimeout time.Duration) (attemptResult, int, bool, stats.ErrorReason) {
	c.writeResponseHead(true, false)
	if err := c.bw.Flush(); err != nil {
		uc.Discard()
		return attemptFailed, 101, false, ReasonNone
	}
	c.deadlines.Set(c.conn, time.Time{})
	c.src.headUntil, c.src.readTimeout = time.Time{}, 0 // the tunnel sets its own deadlines
	uc.Deadlines.Set(uc.Conn, time.Time{})
	var lastActive atomic.Int64
	lastActive.Store(time.Now().UnixNano())
	fromTarget := tunnelReader{r: uc.Br, conn: uc.Conn, deadlines: &uc.Deadlines, idle: idleTimeout, lastActive: &lastActive}
	fromClient := tunnelReader{r: c.br, conn: c.conn, deadlines: &c.deadlines, idle: idleTimeout, lastActive: &lastActive}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer backstop.Recover(c.l.Log(), c.l.Panics(), c.conn, "listener", c.l.Name())
		io.Copy(c.conn, &fromTarget)
		c.conn.Close()
	}()
	io.Copy(uc.Conn, &fromClient)
	uc.Discard()
	<-done
	return attemptDone, 101, false, 0
}

// tunnelReader reads one direction of a tunnel. A read waits at most the
// idle timeout; it gives up only when the other direction was quiet that
// long too.
type tunnelReader struct {
	r          io.Reader
	conn       net.Conn
	deadlines  *deadline.Coarse
	idle       time.Duration
	lastActive *atomic.Int64
}

func (t *tunnelReader) Read(b []byte) (int, error) {
	for {
		t.deadlines.ExtendRead(t.conn, time.Now(), t.idle)
		n, err := t.r.Read(b)
		if n > 0 {
			t.lastActive.Store(time.Now().UnixNano())
			return n, err
		}
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, t.lastActive.Load())) < t.idle {
			continue
		}
		return n, err
	}
}

// errorPages are the balancer's own answers, rendered once: [code][keep].
var errorPages = map[int][2][]byte{}

var pageNotFound []byte

// Page is the body of one of the balancer's own answers with its content
// type, for HTTP/2 streams; HTTP/1.1 connections get it rendered whole
// (errorPages, action.fixed).
type Page struct {
	// contentType is the header value, shared by every answer: never changed.
	ContentType []string
	Body        []byte
}

// ErrorBodies are the pages of errorPages and jsonErrorPages: [code][json].
var ErrorBodies = map[int][2]Page{}

func init() {
	for _, code := range []int{400, 404, 408, 431, 463, 501, 502, 503, 504, 505} {
		text := statusText(code)
		body := strconv.Itoa(code) + " " + text + "\n"
		head := "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\nContent-Type: " + textPlain + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		errorPages[code] = [2][]byte{[]byte(head + "Connection: close\r\n\r\n" + body), []byte(head + "\r\n" + body)}
		jsonBody := `{"error":"` + text + `","status":` + strconv.Itoa(code) + "}\n"
		jsonPage := "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(jsonBody)) + "\r\n"
		jsonErrorPages[code] = [2][]byte{[]byte(jsonPage + "Connection: close\r\n\r\n" + jsonBody), []byte(jsonPage + "\r\n" + jsonBody)}
		ErrorBodies[code] = [2]Page{{[]string{textPlain}, []byte(body)}, {[]string{"application/json"}, []byte(jsonBody)}}
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
func renderFixed(f *FixedResponse) ([]byte, Page) {
	ct := f.ContentType
	if ct == "" {
		ct = textPlain
	}
	raw := []byte("HTTP/1.1 " + strconv.Itoa(f.Status) + " " + http.StatusText(f.Status) + "\r\nContent-Type: " + ct + "\r\nContent-Length: " + strconv.Itoa(len(f.Body)) + "\r\n\r\n" + f.Body)
	return raw, Page{ContentType: []string{ct}, Body: []byte(f.Body)}
}

// Serve runs one HTTP/1.1 client connection of l until it ends or parks
// idle (then its own goroutines go on with it).
func Serve(l Listener, conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &ClientConn{l: l, conn: conn, draining: l.Draining(), forwardedPort: l.ForwardedPort(), forwardedFields: l.ForwardedFields(),
		clientIP: pool.ClientIP(conn.RemoteAddr())}
	c.sourceHash = pool.HashBytes(c.clientIP)
	c.src.conn, c.src.deadlines = c.conn, &c.deadlines
	c.sourceAddr = PeerAddr(c.clientIP)
	if tc, ok := conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tlsProtocol, c.tlsCipher = tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
	}
	c.above, _ = conn.(interface{ Buffered() int })
	// Not idle yet: a new connection's first request is on its way, and a
	// draining balancer lets it arrive (awaitRequest) rather than close the
	// connection under it, which would reset it.
	c.untrack = l.TrackConn(c)
	c.acquireBuffers()
	c.serve()
}

// keepsAlive: the connection may carry another request after this one. A
// draining balancer (Shutdown, a successor took over) answers with
// `Connection: close`, so a keep-alive client opens its next connection on
// the listener's socket, now served by the successor, instead of having an
// idle connection closed under a request it is sending.
func (c *ClientConn) keepsAlive() bool {
	return c.req.KeepsAlive() && !c.draining.Load()
}

// WakeIfIdle makes an idle connection's wait for a request end now, parked
// or not, so it closes (shutdown, draining); a busy one finishes its request
// first.
func (c *ClientConn) WakeIfIdle() {
	if c.idle.Load() {
		c.deadlines.SetRead(c.conn, time.Now())
		idlepark.Wake(&c.spot)
	}
}

// Close closes the connection under whatever it is doing; a parked one
// resumes to end.
func (c *ClientConn) Close() {
	c.conn.Close()
	idlepark.Wake(&c.spot)
}
