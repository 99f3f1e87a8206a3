package h2front

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/berth-lb/berth/balancer/http1"
	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// An HTTP/2 request that goes to its target over HTTP/1.1 takes berth's own
// pooled connections, as the HTTP/1.1 engine's requests do: the same pool,
// liveness check, Terminate and TLS toward https targets, and none of
// net/http's transport goroutines and channels per request.

// droppedRequestField reports whether a target does not get the client's
// field name: hop-by-hop fields, the framing (written anew) and those berth
// sets. HTTP/2 field names are in lower case.
func droppedRequestField(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "upgrade", "te", "transfer-encoding", "content-length",
		"expect", "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-request-id":
		return true
	}
	return false
}

// upstreamHeads are what an HTTP/2 request reads from an HTTP/1.1 target:
// the response head and the lines of a chunked body.
type upstreamHeads struct {
	resp, trailers http1.Head
	// line is scratch for a chunk-size line longer than a buffer.
	line []byte
}

var upstreamHeadPool = sync.Pool{New: func() any { return new(upstreamHeads) }}

// tryHTTP1 is one try on target t over an HTTP/1.1 connection, begun at
// start (a clock.Mono reading). It reports the status sent to the client, or
// a failure reason and whether the request may go to another target.
func (q *h2Request) tryHTTP1(g *pool.Group, t *pool.Target, alternatives bool, start time.Duration) (int, stats.ErrorReason, bool) {
	uc := t.Get(start)
	if uc == nil {
		var err error
		if uc, err = pool.Dial(t, g.ConnectTimeout, alternatives); err != nil {
			return 0, pool.DialFailure(err), true
		}
	}
	finished := false
	defer httpfront.CloseUnfinished(uc, &finished)
	code, why, retry := q.exchangeHTTP1(g, t, uc)
	finished = true
	return code, why, retry
}

// exchangeHTTP1 sends the request on uc and streams the answer back. It
// leaves uc in the pool or closed.
func (q *h2Request) exchangeHTTP1(g *pool.Group, t *pool.Target, uc *pool.Conn) (int, stats.ErrorReason, bool) {
	heads := upstreamHeadPool.Get().(*upstreamHeads)
	defer upstreamHeadPool.Put(heads)
	resp := &heads.resp
	resp.Reset()

	r := q.r
	// A request whose HEADERS ended the stream has the length 0.
	hasBody := r.ContentLength != 0
	retryable := !hasBody && httpfront.Idempotent(sbytes(r.Method))
	if retryable {
		// As on HTTP/1.1 (roundTrip): awaited from before the request goes
		// out, so a host found lost while it waits moves it elsewhere.
		uc.Awaiting.Store(pool.AwaitHead)
	}
	q.writeHTTP1Head(uc.Bw, hasBody)
	err := q.writeHTTP1Body(uc.Bw, hasBody)
	if err == nil {
		err = uc.Bw.Flush()
	}
	switch {
	case errors.Is(err, errClientBody) && q.s.Gone():
		uc.Discard()
		return httpfront.StatusClientClosed, httpfront.ReasonNone, false // the client went away mid-body: nobody to answer
	case errors.Is(err, errClientBody) && errors.Is(err, os.ErrDeadlineExceeded):
		uc.Discard()
		return q.fail(408, stats.ReasonClientTimeout), httpfront.ReasonNone, false
	case errors.Is(err, errClientBody):
		uc.Discard()
		return q.fail(400, stats.ReasonBadRequest), httpfront.ReasonNone, false // a body shorter or longer than its length
	case err != nil && !httpfront.TargetAnswered(uc):
		uc.Discard()
		return 0, httpfront.BrokenReason(err), retryable
	}
	// With err still set, the target stopped taking the body and answered
	// early: that answer goes to the client, and the connection is not reused.
	bodyCut := err != nil

	q.ex.SentToTarget = time.Now()
	uc.Deadlines.ExtendRead(uc.Conn, q.ex.SentToTarget, g.ResponseTimeout)
	// The other goroutines ready to run go first: the answer is seldom there
	// the moment after the request, and the read would return EAGAIN before
	// parking. After their turn it usually is: one system call less per
	// request under h2load (3.4 to 2.4; HAProxy makes 2.8), see
	// docs/benchmarks.md. With nothing else ready it costs a scheduler call.
	// (Sending the request from inside RawConn.Read, so that the wait comes
	// first, is not safe: that read forgets what arrived before, such as a
	// pooled connection's half-close.)
	runtime.Gosched()
	for {
		err := resp.ReadResponse(uc.Br)
		if uc.Awaiting.Swap(pool.AwaitNone) == pool.AwaitAbandoned {
			uc.Discard()
			return 0, stats.ReasonTargetUnreachable, true
		}
		if err != nil {
			uc.Discard()
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				return 0, stats.ReasonResponseTimeout, false
			case retryable && len(resp.Raw) == 0:
				return 0, httpfront.BrokenReason(err), true
			case httpfront.BrokeFraming(err):
				return 0, stats.ReasonBadResponse, false
			default:
				return 0, httpfront.BrokenReason(err), false
			}
		}
		if resp.Status == 101 { // HTTP/2 has no upgrade to switch to
			uc.Discard()
			return 0, stats.ReasonBadResponse, false
		}
		if resp.Status >= 200 {
			break
		}
	}
	q.ex.HeadReceived, q.ex.TargetStatus = time.Now(), resp.Status
	method := sbytes(r.Method)
	noBody := http1.ResponseHasNoBody(method, resp.Status)
	framed := noBody || resp.Chunked || resp.ContentLength >= 0
	q.writeHTTP1ResponseHeader(resp)
	q.s.WriteHeader(resp.Status)

	body := h2BodyCopier{body: streamWriter{s: q.s, idle: q.rt.IdleTimeout}, src: uc.Br, conn: uc,
		idleTimeout: q.rt.IdleTimeout, heads: heads}
	switch {
	case noBody:
	case resp.Chunked:
		err = body.copyChunked()
	case resp.ContentLength >= 0:
		err = body.copyN(resp.ContentLength)
	default:
		err = body.copyN(1 << 62)
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	q.ex.Sent = body.sent
	switch {
	case errors.Is(err, errClientGone):
		uc.Discard()
		return resp.Status, httpfront.ReasonNone, false
	case err != nil:
		uc.Discard()
		// The status went out already: the client sees the stream reset.
		panic(http.ErrAbortHandler)
	case framed && resp.KeepsAlive() && !bodyCut && !httpfront.AmbiguousBody(resp, method):
		uc.VerifyBeforeReuse = noBody
		t.Put(uc)
	default:
		uc.Discard()
	}
	return resp.Status, httpfront.ReasonNone, false
}

// writeHTTP1Head writes the request line and header fields for the target.
func (q *h2Request) writeHTTP1Head(w *bufio.Writer, hasBody bool) {
	r := q.r
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(r.Path) // as the client sent it
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(r.Authority)
	w.WriteString("\r\n")
	declaredLength := false
	for _, f := range r.Fields {
		if droppedRequestField(f.Name) {
			declaredLength = declaredLength || f.Name == "content-length"
			continue
		}
		w.WriteString(f.Name)
		w.WriteString(": ")
		w.WriteString(f.Value)
		w.WriteString("\r\n")
	}
	if xff := q.forwardedForValue(); xff != "" {
		w.WriteString("X-Forwarded-For: ")
		w.WriteString(xff)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Request-Id: ")
	w.WriteString(q.requestID)
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(q.rt.Scheme)
	w.WriteString("\r\nX-Forwarded-Port: ")
	w.Write(q.l.ForwardedPort())
	switch {
	case hasBody && r.ContentLength >= 0:
		w.WriteString("\r\nContent-Length: ")
		w.WriteString(strconv.FormatInt(r.ContentLength, 10))
	case hasBody:
		w.WriteString("\r\nTransfer-Encoding: chunked")
	case declaredLength: // an empty body the client declared
		w.WriteString("\r\nContent-Length: 0")
	}
	w.WriteString("\r\n\r\n")
}

// writeHTTP1Body sends the client's request body: as it is when its length
// is known, else chunked. What a read returns goes out at once, so a
// streamed upload is not held back.
func (q *h2Request) writeHTTP1Body(w *bufio.Writer, hasBody bool) error {
	if !hasBody {
		return nil
	}
	chunked := q.r.ContentLength < 0
	buf := h2CopyBuffers.Get().(*[]byte)
	defer h2CopyBuffers.Put(buf)
	// A client that sends nothing of its body for the idle timeout is
	// answered 408. A deadline takes the body's lock, so it moves on at
	// most every half idle timeout.
	var extendAt time.Time
	var sent int64
	for {
		if now := time.Now(); now.After(extendAt) {
			q.s.SetReadDeadline(now.Add(q.rt.IdleTimeout))
			extendAt = now.Add(q.rt.IdleTimeout / 2)
		}
		n, rerr := q.r.Body.Read(*buf)
		if n > 0 {
			if chunked {
				w.WriteString(strconv.FormatInt(int64(n), 16))
				w.WriteString("\r\n")
			}
			w.Write((*buf)[:n])
			if chunked {
				w.WriteString("\r\n")
			}
			if err := w.Flush(); err != nil {
				return err
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return errors.Join(errClientBody, rerr)
		}
	}
	q.ex.Received += sent
	if chunked {
		w.WriteString("0\r\n\r\n")
	}
	return nil
}

// writeHTTP1ResponseHeader copies the target's response header fields to the
// client's, without hop-by-hop fields, with the stickiness cookies.
func (q *h2Request) writeHTTP1ResponseHeader(resp *http1.Head) {
	// One allocation for every name and value, the names in lower case, as
	// HTTP/2 has them. The bytes never change after: the HPACK encoder
	// keeps some of these strings in its table.
	raw := make([]byte, len(resp.Raw))
	copy(raw, resp.Raw)
	for i := range resp.Fields {
		lowerASCII(resp.Fields[i].Name.Of(raw))
	}
	fields := httpfront.Bstr(raw)
	for i := range resp.Fields {
		f := &resp.Fields[i]
		if f.Hop {
			continue
		}
		switch f.Kind {
		case http1.FieldConnection, http1.FieldKeepAlive, http1.FieldProxyConnection, http1.FieldTransferEncoding, http1.FieldUpgrade:
			continue
		}
		q.s.AddField(fields[f.Name.Start:f.Name.End], fields[f.Value.Start:f.Value.End])
	}
	q.addStickyCookies(func(name string) bool {
		for i := range resp.Fields {
			if resp.Fields[i].Kind == http1.FieldSetCookie && httpfront.SetsCookie(resp.Fields[i].Value.Of(resp.Raw), name) {
				return true
			}
		}
		return false
	})
}

// errClientBody is a failed read of the client's request body.
var errClientBody = errors.New("balancer: the client's request body broke off")

// errClientGone is a failed write to the HTTP/2 client: its stream is gone.
var errClientGone = errors.New("balancer: the client's stream is gone")

// lowerASCII puts the letters of b in lower case, in place.
func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// h2BodyCopier copies a response body from a target's HTTP/1.1 connection to
// an HTTP/2 client, unframed.
type h2BodyCopier struct {
	body        streamWriter
	src         *bufio.Reader
	conn        *pool.Conn
	idleTimeout time.Duration
	heads       *upstreamHeads
	sent        int64
}

// beforeRead extends the read deadline by the idle timeout when the next
// read may block.
func (b *h2BodyCopier) beforeRead() {
	if b.src.Buffered() == 0 {
		b.conn.Deadlines.ExtendRead(b.conn.Conn, time.Now(), b.idleTimeout)
	}
}

// copyN copies n bytes (or up to EOF).
func (b *h2BodyCopier) copyN(n int64) error {
	for done := int64(0); done < n; {
		b.beforeRead()
		if _, err := b.src.Peek(1); err != nil {
			return err
		}
		k := min(int64(b.src.Buffered()), n-done)
		buf, _ := b.src.Peek(int(k))
		if _, err := b.body.Write(buf); err != nil {
			return errClientGone
		}
		b.src.Discard(len(buf))
		done += k
		b.sent += k
	}
	return nil
}

// copyChunked copies a chunked body's data and passes its trailer fields on
// as HTTP/2 trailers.
func (b *h2BodyCopier) copyChunked() error {
	for {
		b.beforeRead()
		size, err := http1.ReadChunkSize(b.src, &b.heads.line)
		if err != nil {
			return err
		}
		if size == 0 {
			return b.copyTrailers()
		}
		if err := b.copyN(size); err != nil {
			return err
		}
		b.beforeRead()
		if err := http1.ReadChunkEnd(b.src); err != nil {
			return err
		}
	}
}

func (b *h2BodyCopier) copyTrailers() error {
	b.beforeRead()
	t := &b.heads.trailers
	if err := t.ReadTrailers(b.src); err != nil {
		return err
	}
	for i := range t.Fields {
		f := &t.Fields[i]
		if f.Kind != http1.FieldOther {
			continue // framing, routing and hop-by-hop fields have no place in HTTP/2 trailers
		}
		b.body.s.AddTrailer(string(f.Name.Of(t.Raw)), string(f.Value.Of(t.Raw)))
	}
	return nil
}
