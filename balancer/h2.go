package balancer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-lb/berth/balancer/rules"
	"golang.org/x/net/http2"
)

// HTTP/2 is served with golang.org/x/net/http2, not berth's HTTP/1.1 engine:
// its frames, streams and flow control are a protocol of their own. The
// handler routes with the listener's compiled route and forwards with the
// same target picks, retries, passive health, in-flight counts and metrics
// as the HTTP/1.1 path; toward targets it speaks HTTP/1.1, or h2c for gRPC,
// which needs HTTP/2 end to end for its trailers.

// h2Preface is what an HTTP/2 client sends first (RFC 9113 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// upstreamTransports are the HTTP/2 path's clients toward targets, made on
// first use. They dial with the group's connect timeout, carried in the
// request's context.
type upstreamTransports struct {
	once sync.Once
	h1   *http.Transport
	h2c  *http2.Transport
}

type connectTimeoutKey struct{}

func (u *upstreamTransports) init() {
	u.once.Do(func() {
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			timeout, _ := ctx.Value(connectTimeoutKey{}).(time.Duration)
			d := targetDialer(orDefault(timeout, DefaultConnectTimeout))
			return d.DialContext(ctx, network, addr)
		}
		u.h1 = &http.Transport{
			DialContext:         dial,
			MaxIdleConnsPerHost: maxIdlePerTarget,
			IdleConnTimeout:     upstreamIdleTimeout,
			DisableCompression:  true,
		}
		u.h2c = &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return dial(ctx, network, addr)
			},
			IdleConnTimeout: upstreamIdleTimeout,
		}
	})
}

// transport is the client toward g's targets: h2c for gRPC, which needs
// HTTP/2 end to end for its trailers, else HTTP/1.1.
func (u *upstreamTransports) transport(g *group, grpc bool) http.RoundTripper {
	u.init()
	if grpc {
		return u.h2c
	}
	return u.h1
}

// closeIdle closes the pooled upstream connections, at shutdown.
func (u *upstreamTransports) closeIdle() {
	if u.h1 != nil {
		u.h1.CloseIdleConnections()
		u.h2c.CloseIdleConnections()
	}
}

// h2Conn is one client HTTP/2 connection, tracked so shutdown can close it
// once no stream is active.
type h2Conn struct {
	conn   net.Conn
	active atomic.Int64
}

type h2ConnKey struct{}

// serveH2 serves one HTTP/2 connection (TLS with ALPN h2, or h2c with prior
// knowledge) until it ends.
func (l *listener) serveH2(conn net.Conn) {
	hc := &h2Conn{conn: conn}
	defer conn.Close()
	defer track(l, l.h2conns, hc)()
	srv := &http2.Server{IdleTimeout: l.route.Load().idleTimeout}
	srv.ServeConn(conn, &http2.ServeConnOpts{
		Context: context.WithValue(context.Background(), h2ConnKey{}, hc),
		Handler: l,
	})
}

// serveHTTPS terminates TLS and serves HTTP/2 or HTTP/1.1, as the client
// chose by ALPN.
func (l *listener) serveHTTPS(conn net.Conn) {
	rt := l.route.Load()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	tc := tls.Server(conn, rt.tls)
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		l.serveH2(tc)
		return
	}
	l.serve(tc)
}

// serveHTTP serves a plain connection: HTTP/2 when it starts with the
// HTTP/2 preface (h2c with prior knowledge), else HTTP/1.1.
func (l *listener) serveHTTP(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(l.route.Load().idleTimeout))
	var buf [len(h2Preface)]byte
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if err != nil || !strings.HasPrefix(h2Preface, string(buf[:n])) {
			break
		}
	}
	conn.SetReadDeadline(time.Time{})
	if n == 0 {
		conn.Close()
		return
	}
	replay := &replayConn{Conn: conn, pending: buf[:n]}
	if n == len(h2Preface) && string(buf[:n]) == h2Preface {
		l.serveH2(replay)
		return
	}
	l.serve(replay)
}

// replayConn reads bytes already read from its connection first.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// ServeHTTP routes and answers one HTTP/2 request.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if hc, ok := r.Context().Value(h2ConnKey{}).(*h2Conn); ok {
		hc.active.Add(1)
		defer hc.active.Add(-1)
	}
	rt := l.route.Load()
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	source, _ := netip.ParseAddrPort(r.RemoteAddr)
	req := rules.Request{Host: strings.ToLower(host), Path: r.URL.Path, Method: r.Method, Query: r.URL.RawQuery,
		Headers: flatHeaders(r.Header), Source: source.Addr().Unmap()}
	act := &rt.fallback
	if i := rt.table.MatchRequest(&req); i >= 0 {
		act = &rt.actions[i]
	}
	switch {
	case rt.redirectPort != 0:
		location := "https://" + host
		if rt.redirectPort != 443 {
			location += ":" + strconv.Itoa(rt.redirectPort)
		}
		location += r.URL.Path
		if r.URL.RawQuery != "" {
			location += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusMovedPermanently)
		rt.fallback.stats.observe(http.StatusMovedPermanently, time.Since(start))
	case act.redirect != nil:
		parts := redirectParts{protocol: []byte(l.forwardedProto), host: []byte(host), port: l.port,
			path: []byte(strings.TrimPrefix(r.URL.Path, "/")), query: []byte(r.URL.RawQuery)}
		w.Header().Set("Location", string(act.redirect.appendLocation(nil, &parts)))
		w.WriteHeader(act.redirect.status)
		act.stats.observe(act.redirect.status, time.Since(start))
	case act.group == nil:
		writeRendered(w, act.fixed)
		act.stats.observe(act.code, time.Since(start))
	default:
		g, stats := act.pickGroup()
		code := l.forwardH2(w, r, g)
		stats.observe(code, time.Since(start))
	}
}

// h2Headers shows an HTTP/2 request's header lines to the rule conditions.
type h2Headers [][2]string

func flatHeaders(h http.Header) h2Headers {
	var out h2Headers
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

func (h h2Headers) NumHeaders() int { return len(h) }

func (h h2Headers) HeaderAt(i int) (name, value []byte) { return []byte(h[i][0]), []byte(h[i][1]) }

// writeRendered answers with a response the balancer rendered as HTTP/1.1.
func writeRendered(w http.ResponseWriter, raw []byte) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	for k, vs := range resp.Header {
		if k != "Connection" {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// forwardH2 sends the request to a target of g and streams the answer back.
// A request is tried again on another target only when connecting failed,
// since then nothing of it was sent. It returns the status the client got.
func (l *listener) forwardH2(w http.ResponseWriter, r *http.Request, g *group) int {
	grpc := strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
	transport := l.b.upstreams.transport(g, grpc)
	ip := clientIP(remoteAddr(r))
	var triedArray [maxAttempts]*targetState
	tried := triedArray[:0]
	reason := ReasonNoTarget
	for range maxAttempts {
		t := g.pick(tried, hashBytes(ip))
		if t == nil {
			break
		}
		tried = append(tried, t)
		t.inFlight.Add(1)
		t.requests.Add(1)
		code, why, retry := l.tryH2(w, r, g, t, transport, ip)
		t.inFlight.Add(-1)
		switch {
		case why == reasonNone:
			if code >= 500 {
				t.passive.failed(time.Now())
			} else {
				t.passive.succeeded()
			}
			return code
		case retry:
			t.failed(why)
			reason = why
			continue
		default:
			t.failed(why)
			return l.failH2(w, why)
		}
	}
	return l.failH2(w, reason)
}

// keepOpenBody keeps a failed try from closing the client's request body:
// the next try may still send it.
type keepOpenBody struct{ io.Reader }

func (keepOpenBody) Close() error { return nil }

// tryH2 is one try on target t. It reports the status sent to the client,
// or a failure reason and whether the request may go to another target.
func (l *listener) tryH2(w http.ResponseWriter, r *http.Request, g *group, t *targetState, transport http.RoundTripper, ip []byte) (int, ErrorReason, bool) {
	ctx, cancel := context.WithCancel(context.WithValue(r.Context(), connectTimeoutKey{}, g.connectTimeout))
	defer cancel()
	ex := &h2Exchange{cancel: cancel}
	t.trackExchange(ex)
	defer t.untrackExchange(ex)
	timedOut := atomic.Bool{}
	timer := time.AfterFunc(g.connectTimeout+g.responseTimeout, func() { timedOut.Store(true); cancel() })
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = t.address
	out.Close = false
	if r.Body != nil && r.Body != http.NoBody {
		out.Body = keepOpenBody{r.Body}
	}
	for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "X-Forwarded-Proto", "X-Forwarded-Port"} {
		out.Header.Del(h)
	}
	if te := r.Header.Get("Te"); te != "trailers" {
		out.Header.Del("Te")
	}
	xff := strings.Join(r.Header.Values("X-Forwarded-For"), ", ")
	if xff != "" {
		xff += ", "
	}
	out.Header.Set("X-Forwarded-For", xff+string(ip))
	out.Header.Set("X-Forwarded-Proto", l.forwardedProto)
	out.Header.Set("X-Forwarded-Port", string(l.port))

	resp, err := transport.RoundTrip(out)
	timer.Stop()
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return 0, dialFailure(err), true
		}
		if timedOut.Load() || errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, ReasonResponseTimeout, false
		}
		if r.Context().Err() != nil {
			return 499, reasonNone, false // the client went away
		}
		return 0, brokenReason(err), false
	}
	defer resp.Body.Close()
	// The answer ended the exchange: a client still sending (a gRPC stream
	// that failed early) must not keep the upstream request body open,
	// which would keep resp.Body.Close waiting for it.
	defer r.Body.Close()
	for k, vs := range resp.Header {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			continue
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	// A response without a length is streamed (Server-Sent Events, gRPC,
	// long polls): every piece goes to the client at once.
	flush := resp.ContentLength < 0
	rc := http.NewResponseController(w)
	buf := h2CopyBuffers.Get().(*[]byte)
	defer h2CopyBuffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return resp.StatusCode, reasonNone, false
			}
			if flush {
				rc.Flush()
			}
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
		w.Header()[http.TrailerPrefix+k] = vs
	}
	return resp.StatusCode, reasonNone, false
}

// h2Exchange is an HTTP/2 request in flight to a target, registered with the
// target so Terminate can abort it (its client stream is reset).
type h2Exchange struct{ cancel context.CancelFunc }

func (e *h2Exchange) Close() error { e.cancel(); return nil }
func (e *h2Exchange) terminate()   { e.cancel() }

// trackExchange records ex among the target's streams, without the L4
// connection counters.
func (t *targetState) trackExchange(ex *h2Exchange) {
	t.mu.Lock()
	if t.streams == nil {
		t.streams = map[stream]struct{}{}
	}
	t.streams[ex] = struct{}{}
	t.mu.Unlock()
}

func (t *targetState) untrackExchange(ex *h2Exchange) {
	t.mu.Lock()
	delete(t.streams, ex)
	t.mu.Unlock()
}

var h2CopyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// failH2 answers with the balancer's error page for reason.
func (l *listener) failH2(w http.ResponseWriter, reason ErrorReason) int {
	code := 502
	switch reason {
	case ReasonNoTarget:
		code = 503
	case ReasonConnectTimeout, ReasonResponseTimeout, ReasonTargetUnreachable:
		code = 504
	}
	l.errors[reason].Add(1)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, strconv.Itoa(code)+" "+http.StatusText(code)+"\n")
	return code
}

func remoteAddr(r *http.Request) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
		return a
	}
	return &net.TCPAddr{}
}
