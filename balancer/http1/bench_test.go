package http1

import (
	"bufio"
	"bytes"
	"testing"
)

// A browser's request as it reaches a balancer: the head's parse is part of
// every request's cost.
const benchRequest = "GET /api/v1/items?page=2 HTTP/1.1\r\n" +
	"Host: shop.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Cookie: session=7f3a9c2e41b8d605; theme=dark\r\n" +
	"X-Forwarded-For: 203.0.113.7\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

const benchResponse = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: application/json\r\n" +
	"Content-Length: 2\r\n" +
	"Date: Wed, 02 Dec 2026 06:00:00 GMT\r\n" +
	"\r\n"

func benchmarkRead(b *testing.B, head string, read func(*Head, *bufio.Reader) error) {
	data := []byte(head)
	src := bytes.NewReader(nil)
	r := bufio.NewReaderSize(src, 4096)
	var h Head
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		src.Reset(data)
		r.Reset(src)
		if err := read(&h, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadRequest(b *testing.B) {
	benchmarkRead(b, benchRequest, (*Head).ReadRequest)
}

func BenchmarkReadResponse(b *testing.B) {
	benchmarkRead(b, benchResponse, (*Head).ReadResponse)
}
