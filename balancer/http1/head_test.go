package http1

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func readRequest(raw string) (*Head, error) {
	h := new(Head)
	return h, h.ReadRequest(bufio.NewReaderSize(strings.NewReader(raw), 64))
}

func readResponse(raw string) (*Head, error) {
	h := new(Head)
	return h, h.ReadResponse(bufio.NewReaderSize(strings.NewReader(raw), 64))
}

func TestRequestGrammar(t *testing.T) {
	long := strings.Repeat("a", MaxLineBytes)
	cases := []struct {
		name string
		raw  string
		err  error
	}{
		{"simple", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", nil},
		{"empty lines before", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"HTTP/1.0 without host", "GET / HTTP/1.0\r\n\r\n", nil},
		{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", nil},
		{"host with port", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", nil},
		{"ipv6 host", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", nil},
		{"options star", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"absolute form", "GET http://a.example/x?y HTTP/1.1\r\nHost: b\r\n\r\n", nil},
		{"obs-text value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", nil},
		{"obs-fold unfolded", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", nil},
		{"same length twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", nil},
		{"length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", nil},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", nil},

		{"no host", "GET / HTTP/1.1\r\n\r\n", ErrMalformed},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ErrMalformed},
		{"host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ErrMalformed},
		{"host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", ErrMalformed},
		{"absolute with userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"absolute without host", "GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"other scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"star without options", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"space in target", "GET /a /b HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"non-ascii target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"control in method", "G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"version 2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", ErrVersion},
		{"connect", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", ErrNotImplemented},
		{"NUL in name", "GET / HTTP/1.1\r\nHost: a\r\nX\x00Y: 1\r\n\r\n", ErrMalformed},
		{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n", ErrMalformed},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", ErrMalformed},
		{"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", ErrMalformed},
		{"0xFF in name", "GET / HTTP/1.1\r\nHost: a\r\nX\xff: 1\r\n\r\n", ErrMalformed},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", ErrMalformed},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", ErrMalformed},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rY: b\r\n\r\n", ErrMalformed},
		{"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", ErrMalformed},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n", ErrMalformed},
		{"fold before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", ErrMalformed},
		{"chunkedX", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedX\r\n\r\n", ErrBadFraming},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", ErrBadFraming},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadFraming},
		{"gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrNotImplemented},
		{"gzip alone", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", ErrBadFraming},
		{"empty coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", ErrBadFraming},
		{"coding with space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun ked\r\n\r\n", ErrBadFraming},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadFraming},
		{"HTTP/1.0 chunked", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadFraming},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", ErrBadFraming},
		{"length list differs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", ErrBadFraming},
		{"signed length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", ErrBadFraming},
		{"empty length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", ErrBadFraming},
		{"huge length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n", ErrBadFraming},
		{"connection not tokens", "GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", ErrMalformed},
		{"line too long", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", ErrLineTooLong},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", MaxFields) + "\r\n", ErrHeadTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readRequest(tc.raw)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

func TestRequestMeaning(t *testing.T) {
	h, err := readRequest("GET http://Public.example:8080/x?q=1 HTTP/1.1\r\nHost: internal.example\r\n" +
		"Connection: content-length, transfer-encoding, host, te, upgrade, x-drop, keep-alive\r\n" +
		"X-Drop: 1\r\nX-Fold: a\r\n\tb\r\nContent-Length: 5, 5\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	host, path := h.HostAndPath()
	if string(host) != "Public.example" || string(path) != "/x" || string(h.Query()) != "q=1" || !h.AbsoluteForm {
		t.Fatalf("host %q path %q query %q absolute %v", host, path, h.Query(), h.AbsoluteForm)
	}
	if h.ContentLength != 5 || !h.KeepAlive {
		t.Fatalf("length %d keep-alive %v", h.ContentLength, h.KeepAlive)
	}
	hop := map[string]bool{}
	for _, f := range h.Fields {
		hop[string(f.Name.Of(h.Raw))] = f.Hop
		if f.Kind == FieldContentLength && string(f.Value.Of(h.Raw)) != "5" {
			t.Errorf("Content-Length forwarded as %q", f.Value.Of(h.Raw))
		}
		if string(f.Name.Of(h.Raw)) == "X-Fold" && string(f.Value.Of(h.Raw)) != "a  \tb" {
			t.Errorf("obs-fold unfolded to %q", f.Value.Of(h.Raw))
		}
	}
	want := map[string]bool{"Host": true, "Connection": false, "X-Drop": true, "X-Fold": false, "Content-Length": false}
	for name, w := range want {
		if hop[name] != w {
			t.Errorf("%s: hop %v, want %v", name, hop[name], w)
		}
	}
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	h.WriteRequestLine(bw)
	bw.Flush()
	if out.String() != "GET /x?q=1 HTTP/1.1\r\n" {
		t.Errorf("request line %q", out.String())
	}
}

func TestResponseGrammar(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		err  error
	}{
		{"simple", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", nil},
		{"no reason", "HTTP/1.1 204\r\n\r\n", nil},
		{"empty reason", "HTTP/1.1 204 \r\n\r\n", nil},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\n", nil},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", nil},
		{"chunked then gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", ErrBadFraming},
		{"gzip then chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrBadFraming},
		{"chunkedX", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunkedX\r\n\r\n", ErrBadFraming},
		{"HTTP/1.0 chunked", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadFraming},
		{"bare CR in field", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", ErrMalformed},
		{"bare CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n", ErrMalformed},
		{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", ErrMalformed},
		{"status 099", "HTTP/1.1 099 OK\r\n\r\n", ErrMalformed},
		{"no space after status", "HTTP/1.1 200OK\r\n\r\n", ErrMalformed},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", ErrMalformed},
		{"length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadFraming},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readResponse(tc.raw)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

func TestResponseConnectionKeepsFraming(t *testing.T) {
	h, err := readResponse("HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range h.Fields {
		if f.Kind == FieldContentLength && f.Hop {
			t.Fatal("Connection removed Content-Length from a response")
		}
	}
	if h.ContentLength != 2 {
		t.Fatalf("length %d", h.ContentLength)
	}
}
