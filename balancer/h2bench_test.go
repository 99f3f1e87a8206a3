package balancer

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/balancer/h2conn"
)

// BenchmarkH2ProxyHTTP1 sends GETs over one h2c connection, h2BenchStreams
// in flight at a time (as h2load -m does), through the balancer to a raw
// HTTP/1.1 backend: an op is one stream. The client is a bare framer, so
// an instruction count (callgrind) is mostly the balancer's HTTP/2 path.
func BenchmarkH2ProxyHTTP1(b *testing.B) { benchmarkH2ProxyHTTP1(b, false) }

// BenchmarkH2ProxyHTTP1TLS is BenchmarkH2ProxyHTTP1 over TLS (ALPN h2), as
// scripts/bench-tls.sh measures it: the TLS records and their crypto too.
func BenchmarkH2ProxyHTTP1TLS(b *testing.B) { benchmarkH2ProxyHTTP1(b, true) }

func benchmarkH2ProxyHTTP1(b *testing.B, overTLS bool) {
	backend := serving("a", namedRawBackend(b, "ok\n"))
	cfg := webConfig(backend)
	var roots *x509.CertPool
	if overTLS {
		pki := newTestPKI(b)
		cfg, roots = httpsConfig([]Certificate{pki.leaf(b, "bench.example.com")}, backend), pki.pool
	}
	lb := start(b, cfg)
	conn, err := net.Dial("tcp", lb.Addr("web"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if overTLS {
		tc := tls.Client(conn, &tls.Config{ServerName: "bench.example.com", RootCAs: roots, NextProtos: []string{"h2"}})
		if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
			b.Fatalf("TLS handshake: %v, protocol %q", err, tc.ConnectionState().NegotiatedProtocol)
		}
		conn = tc
	}
	conn.SetDeadline(time.Now().Add(time.Hour))
	fr := http2.NewFramer(conn, conn)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	if _, err := conn.Write([]byte(h2conn.Preface)); err != nil {
		b.Fatal(err)
	}
	// A window large enough that no WINDOW_UPDATE is needed for the run.
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1}); err != nil {
		b.Fatal(err)
	}
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	scheme := "http"
	if overTLS {
		scheme = "https"
	}
	fields := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: scheme},
		{Name: ":authority", Value: "bench"}, {Name: ":path", Value: "/"}, {Name: "user-agent", Value: "bench"}}
	var batch bytes.Buffer
	out := http2.NewFramer(&batch, nil)
	stream := uint32(1)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(h2BenchStreams, b.N-done)
		batch.Reset()
		for range n {
			block.Reset()
			for _, f := range fields {
				enc.WriteField(f)
			}
			out.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
			stream += 2
		}
		if _, err := conn.Write(batch.Bytes()); err != nil {
			b.Fatal(err)
		}
		for ended := 0; ended < n; {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.RSTStreamFrame, *http2.GoAwayFrame:
				b.Fatalf("stream ended by %v", f)
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					ended++
				}
			case *http2.DataFrame:
				if f.StreamEnded() {
					ended++
				}
			}
		}
		done += n
	}
}

// h2BenchStreams is how many streams BenchmarkH2ProxyHTTP1 keeps in flight.
const h2BenchStreams = 10
