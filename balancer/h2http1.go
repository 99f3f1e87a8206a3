package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// An HTTP/2 request that goes to its target over HTTP/1.1 takes berth's own
// pooled connections, as the HTTP/1.1 engine's requests do: the same pool,
// liveness check, Terminate and TLS toward https targets, and none of
// net/http's transport goroutines and channels per request.

// droppedRequestFields are the client's header fields a target does not get:
// hop-by-hop fields, the framing (written anew) and those berth sets.
var droppedRequestFields = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Upgrade": true, "Te": true,
	"Transfer-Encoding": true, "Content-Length": true, "Expect": true, "Host": true,
	"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Port": true, "X-Request-Id": true,
}

// upstreamHeads are what an HTTP/2 request reads from an HTTP/1.1 target:
// the response head and the lines of a chunked body.
type upstreamHeads struct{ resp, scratch head }

var upstreamHeadPool = sync.Pool{New: func() any { return new(upstreamHeads) }}

// tryHTTP1 is one try on target t over an HTTP/1.1 connection. It reports
// the status sent to the client, or a failure reason and whether the
// request may go to another target.
func (q *h2Request) tryHTTP1(g *group, t *targetState) (int, ErrorReason, bool) {
	uc := t.get()
	if uc == nil {
		var err error
		if uc, err = dialTarget(t, g.connectTimeout); err != nil {
			return 0, dialFailure(err), true
		}
	}
	heads := upstreamHeadPool.Get().(*upstreamHeads)
	defer upstreamHeadPool.Put(heads)
	resp := &heads.resp
	resp.reset()

	r := q.r
	// x/net gives every request a Body, also one whose HEADERS ended the
	// stream: its length 0 is what says there is none.
	hasBody := r.ContentLength != 0
	retryable := !hasBody && idempotent(sbytes(r.Method))
	q.writeHTTP1Head(uc.bw, hasBody)
	err := q.writeHTTP1Body(uc.bw, hasBody)
	if err == nil {
		err = uc.bw.Flush()
	}
	switch {
	case errors.Is(err, errClientBody) && q.r.Context().Err() != nil:
		uc.discard()
		return statusClientClosed, reasonNone, false // the client went away mid-body: nobody to answer
	case errors.Is(err, errClientBody) && errors.Is(err, os.ErrDeadlineExceeded):
		uc.discard()
		return q.fail(408, ReasonClientTimeout), reasonNone, false
	case errors.Is(err, errClientBody):
		uc.discard()
		return q.fail(400, ReasonBadRequest), reasonNone, false // a body shorter or longer than its length
	case err != nil && !targetAnswered(uc):
		uc.discard()
		return 0, brokenReason(err), retryable
	}
	// With err still set, the target stopped taking the body and answered
	// early: that answer goes to the client, and the connection is not reused.
	bodyCut := err != nil

	q.ex.sentToTarget = time.Now()
	uc.conn.SetReadDeadline(q.ex.sentToTarget.Add(g.responseTimeout))
	for {
		if err := resp.read(uc.br, true); err != nil {
			uc.discard()
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				return 0, ReasonResponseTimeout, false
			case retryable && len(resp.raw) == 0:
				return 0, brokenReason(err), true
			case errors.Is(err, errBadResponse) || errors.Is(err, errMalformedHead) || errors.Is(err, errBadFraming):
				return 0, ReasonBadResponse, false
			default:
				return 0, brokenReason(err), false
			}
		}
		if resp.status == 101 { // HTTP/2 has no upgrade to switch to
			uc.discard()
			return 0, ReasonBadResponse, false
		}
		if resp.status >= 200 {
			break
		}
	}
	q.ex.headReceived, q.ex.targetStatus = time.Now(), resp.status
	noBody := responseHasNoBody(sbytes(r.Method), resp.status)
	framed := noBody || resp.chunked || resp.contentLength >= 0
	q.writeHTTP1ResponseHeader(resp)
	q.w.WriteHeader(resp.status)

	body := h2BodyCopier{body: newStreamWriter(q.w, !noBody && resp.contentLength < 0, q.rt.idleTimeout),
		src: uc.br, conn: uc, idleTimeout: q.rt.idleTimeout, scratch: &heads.scratch}
	switch {
	case noBody:
	case resp.chunked:
		err = body.copyChunked()
	case resp.contentLength >= 0:
		err = body.copyN(resp.contentLength)
	default:
		err = body.copyN(1 << 62)
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	q.ex.sent = body.sent
	switch {
	case errors.Is(err, errClientGone):
		uc.discard()
		return resp.status, reasonNone, false
	case err != nil:
		uc.discard()
		// The status went out already: the client sees the stream reset.
		panic(http.ErrAbortHandler)
	case framed && resp.keepAlive() && !bodyCut:
		t.put(uc)
	default:
		uc.discard()
	}
	return resp.status, reasonNone, false
}

// writeHTTP1Head writes the request line and header fields for the target.
func (q *h2Request) writeHTTP1Head(w *bufio.Writer, hasBody bool) {
	r := q.r
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(r.RequestURI) // the :path as the client sent it
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(r.Host)
	w.WriteString("\r\n")
	for k, vs := range r.Header {
		if droppedRequestFields[k] {
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if xff := q.forwardedForValue(); xff != "" {
		w.WriteString("X-Forwarded-For: ")
		w.WriteString(xff)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Request-Id: ")
	w.WriteString(q.requestID)
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(q.rt.scheme)
	w.WriteString("\r\nX-Forwarded-Port: ")
	w.Write(q.l.port)
	switch {
	case hasBody && r.ContentLength >= 0:
		w.WriteString("\r\nContent-Length: ")
		w.WriteString(strconv.FormatInt(r.ContentLength, 10))
	case hasBody:
		w.WriteString("\r\nTransfer-Encoding: chunked")
	case r.Header["Content-Length"] != nil: // an empty body the client declared
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
	// answered 408. Each deadline costs a message to the connection's serve
	// loop, so it moves on at most every half idle timeout.
	rc := http.NewResponseController(q.w)
	var extendAt time.Time
	var sent int64
	for {
		if now := time.Now(); now.After(extendAt) {
			rc.SetReadDeadline(now.Add(q.rt.idleTimeout))
			extendAt = now.Add(q.rt.idleTimeout / 2)
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
	q.ex.received += sent
	if chunked {
		w.WriteString("0\r\n\r\n")
	}
	return nil
}

// writeHTTP1ResponseHeader copies the target's response header fields to the
// client's, without hop-by-hop fields, with the stickiness cookies.
func (q *h2Request) writeHTTP1ResponseHeader(resp *head) {
	h := q.w.Header()
	fields := string(resp.raw) // one allocation for every name and value
	values := make([]string, len(resp.headers))
	for i := range resp.headers {
		hd := &resp.headers[i]
		if hd.connectionListed {
			continue
		}
		switch hd.kind {
		case hConnection, hKeepAlive, hProxyConnection, hTransferEncoding, hUpgrade:
			continue
		}
		name := http.CanonicalHeaderKey(fields[hd.name.start:hd.name.end])
		values[i] = fields[hd.value.start:hd.value.end]
		if prev, ok := h[name]; ok {
			h[name] = append(prev, values[i])
		} else {
			h[name] = values[i : i+1 : i+1] // one backing array for every field's first value
		}
	}
	q.addStickyCookies(func(name string) bool {
		for i := range resp.headers {
			if resp.headers[i].kind == hSetCookie && setsCookie(resp.headers[i].value.of(resp.raw), name) {
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

// h2BodyCopier copies a response body from a target's HTTP/1.1 connection to
// an HTTP/2 client, unframed.
type h2BodyCopier struct {
	body        *streamWriter
	src         *bufio.Reader
	conn        *upstreamConn
	idleTimeout time.Duration
	scratch     *head
	sent        int64
}

// copyN copies n bytes (or up to EOF), extending the read deadline by the
// idle timeout before every read that may block.
func (b *h2BodyCopier) copyN(n int64) error {
	for done := int64(0); done < n; {
		if b.src.Buffered() == 0 {
			b.conn.conn.SetReadDeadline(time.Now().Add(b.idleTimeout))
		}
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
		line, err := b.readLine()
		if err != nil {
			return err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return errBadChunk
		}
		if size == 0 {
			return b.copyTrailers()
		}
		if err := b.copyN(size); err != nil {
			return err
		}
		if end, err := b.readLine(); err != nil || len(end) != 0 {
			return errBadChunk
		}
	}
}

func (b *h2BodyCopier) copyTrailers() error {
	for {
		line, err := b.readLine()
		if err != nil || len(line) == 0 {
			return err
		}
		name, value, ok := cutField(line)
		if !ok {
			return errBadChunk
		}
		b.body.w.Header()[http.TrailerPrefix+http.CanonicalHeaderKey(string(name))] = []string{string(value)}
	}
}

// cutField splits a header field line into its name and value.
func cutField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	return line[:colon], bytes.TrimSpace(line[colon+1:]), true
}

// readLine reads one line of chunk framing, without its end of line.
func (b *h2BodyCopier) readLine() ([]byte, error) {
	if b.src.Buffered() == 0 {
		b.conn.conn.SetReadDeadline(time.Now().Add(b.idleTimeout))
	}
	b.scratch.raw = b.scratch.raw[:0]
	line, err := b.scratch.readLine(b.src)
	if err != nil {
		return nil, err
	}
	return b.scratch.trimEOL(line).of(b.scratch.raw), nil
}
