package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// tlsTarget is an HTTPS server on loopback that answers with its name, the
// protocol it saw and whether the request came over TLS; conns counts the
// connections it accepted.
func tlsTarget(t *testing.T, name string) (addr string, conns *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+" "+r.Proto+" tls="+strconv.FormatBool(r.TLS != nil))
	}))
	conns = &atomic.Int64{}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "https://"), conns
}

// httpsGroup makes the first group of cfg speak TLS to its targets.
func httpsGroup(cfg Config) Config {
	cfg.Groups[0].Protocol = ProtocolHTTPS
	return cfg
}

func TestHTTP1ToAnHTTPSGroupKeepsOneTLSConnection(t *testing.T) {
	addr, conns := tlsTarget(t, "a")
	lb := start(t, httpsGroup(webConfig(serving("a", addr))))
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 5 {
		if code, body, _ := get(t, client, "http://"+lb.Addr("web")+"/"); code != 200 || body != "a HTTP/1.1 tls=true" {
			t.Fatalf("request %d: %d %q, want 200 from the target over TLS", i, code, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the target accepted %d connections for 5 requests in a row, want 1 kept alive", n)
	}
}

func TestATargetInAnHTTPSGroupIsSpokenToWithTLSByEveryGroup(t *testing.T) {
	addr, _ := tlsTarget(t, "a")
	cfg := httpsGroup(webConfig(serving("a", addr)))
	cfg.Groups = append(cfg.Groups, GroupConfig{Name: "plain", Targets: []TargetConfig{serving("a", addr)}})
	cfg.Listeners = append(cfg.Listeners, ListenerConfig{Name: "other", Address: "127.0.0.2:0", Default: Action{Forward: "plain"}})
	lb := start(t, cfg)
	if code, body, _ := get(t, http.DefaultClient, "http://"+lb.Addr("other")+"/"); code != 200 || body != "a HTTP/1.1 tls=true" {
		t.Errorf("through the http group: %d %q, want the target's answer over TLS", code, body)
	}

	cfg.Groups[0].Protocol = "h2"
	if err := New(nil).Apply(cfg); err == nil || !strings.Contains(err.Error(), `group web: unknown protocol "h2"`) {
		t.Errorf("a group of protocol h2: %v", err)
	}
}

func TestAFailedTargetHandshakeIsAFailedConnect(t *testing.T) {
	good, _ := tlsTarget(t, "good")
	plain := addrOf(backend(t, "plain", nil)) // answers a ClientHello with an HTTP 400
	silent := tcpServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })

	// A handshake that fails sent nothing of the request: it goes to the
	// other target, every time.
	lb := start(t, httpsGroup(webConfig(serving("plain", plain), serving("good", good))))
	for i := range 4 {
		if code, body, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/"); code != 200 || body != "good HTTP/1.1 tls=true" {
			t.Fatalf("request %d: %d %q, want it retried on the good target", i, code, body)
		}
	}
	for _, s := range lb.Targets() {
		if s.ID == "plain" && s.Failures == 0 {
			t.Errorf("the target without TLS counts no failure: %+v", s)
		}
	}

	for _, tc := range []struct {
		target string
		code   int
		reason stats.ErrorReason
	}{
		{plain, 502, stats.ReasonConnectFailed},
		{silent, 504, stats.ReasonConnectTimeout}, // the handshake is within the connect timeout
	} {
		cfg := httpsGroup(webConfig(serving("t", tc.target)))
		cfg.Groups[0].ConnectTimeout = 200 * time.Millisecond
		lb := start(t, cfg)
		if code, _, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/"); code != tc.code {
			t.Errorf("a target whose handshake fails (%s): %d, want %d", tc.reason, code, tc.code)
		}
		if n := lb.Listeners()[0].Errors[tc.reason]; n != 1 {
			t.Errorf("%s errors: %d, want 1", tc.reason, n)
		}
	}
}

// targetCertificate is a target's certificate, signed by a CA nobody trusts.
func targetCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	cert := newTestPKI(t).leaf(t, "target.internal")
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func TestStillOpenLooksBelowTLS(t *testing.T) {
	pair := targetCertificate(t)
	hangUp := make(chan struct{})
	addr := tcpServer(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{pair}})
		line, _ := bufio.NewReader(tc).ReadString('\n')
		io.WriteString(tc, line)
		<-hangUp
		tc.Close()
	})
	conn, _, err := pool.Connect(context.Background(), addr, 5*time.Second, 5*time.Second, pool.TargetTLSHTTP1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*tls.Conn); !ok {
		t.Fatalf("connectTarget with TLS returned a %T", conn)
	}
	// One exchange, as a pooled connection has had: it reads what the
	// server sent after its handshake (TLS 1.3 session tickets).
	io.WriteString(conn, "ping\n")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo over TLS: %q, %v", line, err)
	}
	if !pool.StillOpen(conn) {
		t.Fatal("an idle open TLS connection looks closed")
	}
	close(hangUp)
	eventually(t, "the target's close to show", func() bool { return !pool.StillOpen(conn) })
}

func TestGRPCStreamsToATLSTarget(t *testing.T) {
	pair := targetCertificate(t)
	// The target speaks TLS only: a call that reaches it went over TLS.
	target := grpcTarget(t, "secure", grpc.Creds(credentials.NewServerTLSFromCert(&pair)))
	lb := start(t, httpsGroup(webConfig(serving("g", target))))
	conn, err := grpc.NewClient(lb.Addr("web"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	checkChats(t, conn, "secure")
}

func TestHTTP2ClientsReachAnHTTPSGroupOverTLS(t *testing.T) {
	addr, conns := tlsTarget(t, "a")
	lb := start(t, httpsGroup(webConfig(serving("a", addr))))
	client := h2cClient()
	for i := range 3 {
		if code, body, _ := get(t, client, "http://"+lb.Addr("web")+"/"); code != 200 || body != "a HTTP/1.1 tls=true" {
			t.Fatalf("request %d: %d %q, want the target's answer over TLS HTTP/1.1", i, code, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the target accepted %d connections for 3 requests in a row, want 1 kept alive", n)
	}

	plain := addrOf(backend(t, "plain", nil))
	lb = start(t, httpsGroup(webConfig(serving("plain", plain))))
	if code, _, _ := get(t, client, "http://"+lb.Addr("web")+"/"); code != 502 {
		t.Errorf("a target without TLS: %d, want 502", code)
	}
	if n := lb.Listeners()[0].Errors[stats.ReasonConnectFailed]; n != 1 {
		t.Errorf("connect_failed errors: %d, want 1", n)
	}
}
