package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func copyChunked(raw string, dechunk bool) (string, error) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	cc := ChunkedCopy{Dechunk: dechunk, Trailers: new(Head)}
	_, err := cc.Copy(bw, bufio.NewReaderSize(strings.NewReader(raw), 16), nil)
	bw.Flush()
	return out.String(), err
}

func TestChunkedGrammar(t *testing.T) {
	cases := []struct {
		name, raw, want string
		err             error
	}{
		{"simple", "3\r\nabc\r\n0\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n", nil},
		{"upper hex, leading zeros", "00A\r\n0123456789\r\n000\r\n\r\n", "a\r\n0123456789\r\n0\r\n\r\n", nil},
		{"extensions dropped", "3;a=b;c=\"x;y\"\r\nabc\r\n0;z\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n", nil},
		{"whitespace before extension", "3 \t;a\r\nabc\r\n0\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n", nil},
		{"trailers", "1\r\na\r\n0\r\nX-Sum:  1 \r\nY:2\r\n\r\n", "1\r\na\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n", nil},
		{"framing fields in trailers dropped", "0\r\nContent-Length: 5\r\nHost: x\r\nX: 1\r\n\r\n", "0\r\nX: 1\r\n\r\n", nil},
		{"long chunk", "20\r\n" + strings.Repeat("x", 32) + "\r\n0\r\n\r\n", "20\r\n" + strings.Repeat("x", 32) + "\r\n0\r\n\r\n", nil},

		{"no CRLF after data", "3\r\nabcX\r\n0\r\n\r\n", "", ErrBadChunk},
		{"LF only after data", "3\r\nabc\n0\r\n\r\n", "", ErrBadChunk},
		{"bare LF size line", "3\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"empty size", "\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"junk before size", " 3\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"junk after size", "3x\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"0x prefix", "0x3\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"signed", "-3\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"control byte in extension", "3;a\x01\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"bare CR in extension", "3;a\rb\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"unbalanced quote", "3;a=\"b\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"backslash outside quotes", "3;a=\\b\r\nabc\r\n0\r\n\r\n", "", ErrBadChunk},
		{"size overflow", "10000000000000\r\n", "", ErrBadChunk},
		{"bad trailer name", "0\r\nX Y: 1\r\n\r\n", "", ErrMalformed},
		{"NUL in trailer", "0\r\nX: a\x00\r\n\r\n", "", ErrMalformed},
		{"fold in trailer", "0\r\nX: a\r\n b\r\n\r\n", "", ErrMalformed},
		{"cut in data", "5\r\nab", "", io.ErrUnexpectedEOF},
		{"cut before data end", "3\r\nabc", "", io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := copyChunked(tc.raw, false)
			if tc.err != nil {
				if !errors.Is(err, tc.err) && !(tc.err == io.ErrUnexpectedEOF && errors.Is(err, io.EOF)) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestChunkedDechunk(t *testing.T) {
	got, err := copyChunked("3\r\nabc\r\n2;x\r\nde\r\n0\r\nX: 1\r\n\r\n", true)
	if err != nil || got != "abcde" {
		t.Fatalf("got %q, %v", got, err)
	}
}
