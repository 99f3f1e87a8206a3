package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// httpsConfig is one https listener with certs in front of the web group.
func httpsConfig(certs []Certificate, targets ...TargetConfig) Config {
	cfg := webConfig(targets...)
	cfg.Listeners[0].Protocol = ProtocolHTTPS
	cfg.Listeners[0].Certificates = certs
	return cfg
}

// protoEcho answers with the protocol it saw and the X-Forwarded-Proto it got.
func protoEcho(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, r.Proto+" "+r.Header.Get("X-Forwarded-Proto"))
}

func httpsClient(serverName string, pki *testPKI, h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: serverName, RootCAs: pki.pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func TestHTTPSPicksCertificateBySNIAndSpeaksBothVersions(t *testing.T) {
	pki := newTestPKI(t)
	app := backend(t, "app", protoEcho)
	lb := start(t, httpsConfig([]Certificate{pki.leaf(t, "one.example.com"), pki.leaf(t, "two.example.com")}, serving("a", addrOf(app))))
	for _, tc := range []struct {
		name string
		h2   bool
		want string
	}{
		{"one.example.com", false, "HTTP/1.1 https"},
		{"two.example.com", false, "HTTP/1.1 https"},
		{"one.example.com", true, "HTTP/1.1 https"}, // HTTP/2 from the client, HTTP/1.1 to the target
		{"two.example.com", true, "HTTP/1.1 https"},
	} {
		c := httpsClient(tc.name, pki, tc.h2)
		resp, err := c.Get("https://" + lb.Addr("web") + "/")
		if err != nil {
			t.Fatalf("%s (h2 %v): %v", tc.name, tc.h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != tc.name {
			t.Errorf("SNI %s: served the certificate of %s", tc.name, got)
		}
		if wantMajor := map[bool]int{false: 1, true: 2}[tc.h2]; resp.ProtoMajor != wantMajor {
			t.Errorf("SNI %s: client spoke HTTP/%d, want HTTP/%d", tc.name, resp.ProtoMajor, wantMajor)
		}
		if string(body) != tc.want {
			t.Errorf("SNI %s (h2 %v): target saw %q, want %q", tc.name, tc.h2, body, tc.want)
		}
	}
	old := tls.Config{ServerName: "one.example.com", RootCAs: pki.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if c, err := tls.Dial("tcp", lb.Addr("web"), &old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 client was accepted")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("a TLS 1.1 client: %v, want the server's protocol version alert", err)
	}
}

func TestHTTPSReloadsChangedCertificatesWithoutDroppingConnections(t *testing.T) {
	pki := newTestPKI(t)
	app := backend(t, "app", nil)
	cert := pki.leaf(t, "one.example.com")
	lb := start(t, httpsConfig([]Certificate{cert}, serving("a", addrOf(app))))
	kept := httpsClient("one.example.com", pki, false)
	serialOf := func(c *http.Client) string {
		t.Helper()
		resp, err := c.Get("https://" + lb.Addr("web") + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	first := serialOf(kept)
	// The files of the same name get a new certificate; their modification
	// time moves forward so the change shows even on a coarse clock.
	pki.leaf(t, "one.example.com")
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(cert.CertFile, future, future)
	os.Chtimes(cert.KeyFile, future, future)
	eventually(t, "the renewed certificate", func() bool {
		return serialOf(httpsClient("one.example.com", pki, false)) != first
	})
	if serialOf(kept) != first {
		t.Error("the open keep-alive connection was dropped by the reload")
	}
}

func TestH2CPriorKnowledgeAndGRPCStyleTrailers(t *testing.T) {
	app := backend(t, "app", protoEcho)
	// An h2c target that answers like gRPC: streamed body, then trailers.
	grpcLike := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Proto+" "+string(body))
		w.Header().Set("Grpc-Status", "0")
	}), &http2.Server{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go grpcLike.Serve(ln)
	t.Cleanup(func() { grpcLike.Close() })

	cfg := webConfig(serving("a", addrOf(app)))
	cfg.Groups = append(cfg.Groups, GroupConfig{Name: "grpc", Targets: []TargetConfig{serving("g", ln.Addr().String())}})
	cfg.Listeners[0].Rules = []Rule{{Priority: 1, Paths: []string{"/echo.Echo/*"}, Action: Action{Forward: "grpc"}}}
	lb := start(t, cfg)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	resp, err := client.Get("http://" + lb.Addr("web") + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "HTTP/1.1 http" {
		t.Errorf("h2c: client spoke %s, target saw %q", resp.Proto, body)
	}

	req, _ := http.NewRequest("POST", "http://"+lb.Addr("web")+"/echo.Echo/Say", strings.NewReader("hello"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0 hello" || resp.Trailer.Get("Grpc-Status") != "0" {
		t.Errorf("gRPC-style call: target saw %q, trailer Grpc-Status %q", body, resp.Trailer.Get("Grpc-Status"))
	}

	// HTTP/1.1 keeps working on the same listener.
	if code, body, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/"); code != 200 || body != "HTTP/1.1 http" {
		t.Errorf("HTTP/1.1 after h2c: %d %q", code, body)
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	cfg := webConfig()
	cfg.Listeners[0].RedirectToHTTPS = 8443
	lb := start(t, cfg)
	for _, tc := range []struct{ raw, want string }{
		{"GET /a/b?x=1 HTTP/1.1\r\nHost: shop.example:80\r\n\r\n", "Location: https://shop.example:8443/a/b?x=1\r\n"},
		{"GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n", "Location: https://shop.example:8443/\r\n"},
	} {
		c, err := net.Dial("tcp", lb.Addr("web"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, tc.raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 301 || "Location: "+resp.Header.Get("Location")+"\r\n" != tc.want {
			t.Errorf("%q: %d Location %q, want %q", tc.raw, resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
	}
	h2c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	resp, err := h2c.Get("http://" + lb.Addr("web") + "/h2?y=2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || !strings.HasSuffix(resp.Header.Get("Location"), ":8443/h2?y=2") {
		t.Errorf("h2c: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	bad := webConfig()
	bad.Listeners[0].Protocol = ProtocolHTTPS
	if err := New(nil).Apply(bad); err == nil || !strings.Contains(err.Error(), "needs at least one certificate") {
		t.Errorf("https without certificates: %v", err)
	}
}

// h2cClient speaks HTTP/2 with prior knowledge over plain TCP.
func h2cClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
}

func TestHTTP2StreamsEventsAtOnceAndEndsOnTerminate(t *testing.T) {
	release := make(chan struct{})
	app := backend(t, "events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select { // the rest never comes: the stream stays open
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before the backend's Close, which waits for it
	lb := start(t, webConfig(serving("sse", addrOf(app))))
	resp, err := h2cClient().Get("http://" + lb.Addr("web") + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("the first event did not come at once: %q, %v", line, err)
	}
	if n := lb.Terminate("sse"); n != 1 {
		t.Errorf("Terminate closed %d, want the HTTP/2 stream's 1", n)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the stream ended cleanly after Terminate; want it reset")
	}
}
