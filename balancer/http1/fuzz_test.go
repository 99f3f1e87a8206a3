package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// The fuzz targets check properties, not only that nothing panics: what the
// codec accepts, written out in canonical form and read again, is the same
// message, and nothing it writes holds CR, LF or NUL outside the line
// framing. Their seeds (testdata/fuzz) hold every hostile case of issue #10
// and run in plain `go test`; `make fuzz` runs each target for a while.

// canonicalHead writes h as berth forwards it: the start-line, the fields
// that are not hop-by-hop (Host from the authority of an absolute-form
// target), the empty line.
func canonicalHead(h *Head, response bool) []byte {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if response {
		h.WriteStatusLine(w)
	} else {
		h.WriteRequestLine(w)
		if h.AbsoluteForm {
			WriteField(w, []byte("Host"), h.Host.Of(h.Raw))
		}
	}
	for i := range h.Fields {
		if f := &h.Fields[i]; !f.Hop {
			h.WriteFieldLine(w, f)
		}
	}
	w.WriteString("\r\n")
	w.Flush()
	return out.Bytes()
}

// checkFraming fails when a line of b, split at CRLF, holds a CR, LF or NUL.
func checkFraming(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Fatalf("output does not end in CRLF: %q", b)
	}
	for _, line := range bytes.Split(b[:len(b)-2], []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("line %q holds CR, LF or NUL", line)
		}
	}
}

type fieldLine struct{ name, value string }

func forwarded(h *Head) []fieldLine {
	var out []fieldLine
	for _, f := range h.Fields {
		if !f.Hop {
			out = append(out, fieldLine{string(f.Name.Of(h.Raw)), string(f.Value.Of(h.Raw))})
		}
	}
	return out
}

func sameFields(a, b []fieldLine) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzRequestHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var h Head
		if h.ReadRequest(bufio.NewReaderSize(bytes.NewReader(raw), 16)) != nil {
			return
		}
		out := canonicalHead(&h, false)
		checkFraming(t, out)
		var again Head
		if err := again.ReadRequest(bufio.NewReader(bytes.NewReader(out))); err != nil {
			t.Fatalf("canonical form %q of accepted %q refused: %v", out, raw, err)
		}
		host, path := h.HostAndPath()
		host2, path2 := again.HostAndPath()
		if !bytes.Equal(h.Method(), again.Method()) || !bytes.Equal(path, path2) || !bytes.EqualFold(host, host2) ||
			!bytes.Equal(h.Query(), again.Query()) || h.HTTP10 != again.HTTP10 {
			t.Fatalf("request line changed: %q %q %q -> %q %q %q", h.Method(), host, path, again.Method(), host2, path2)
		}
		if h.ContentLength != again.ContentLength || h.Chunked != again.Chunked || h.Expect100 != again.Expect100 {
			t.Fatalf("framing changed: %d %v -> %d %v", h.ContentLength, h.Chunked, again.ContentLength, again.Chunked)
		}
		if !sameFields(forwarded(&h), forwarded(&again)) && !h.AbsoluteForm {
			t.Fatalf("fields changed: %q -> %q", forwarded(&h), forwarded(&again))
		}
	})
}

func FuzzResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var h Head
		if h.ReadResponse(bufio.NewReaderSize(bytes.NewReader(raw), 16)) != nil {
			return
		}
		out := canonicalHead(&h, true)
		checkFraming(t, out)
		var again Head
		if err := again.ReadResponse(bufio.NewReader(bytes.NewReader(out))); err != nil {
			t.Fatalf("canonical form %q of accepted %q refused: %v", out, raw, err)
		}
		if h.Status != again.Status || !bytes.Equal(h.Line[2].Of(h.Raw), again.Line[2].Of(again.Raw)) ||
			h.ContentLength != again.ContentLength || h.Chunked != again.Chunked || h.KeepsAlive() && !again.KeepsAlive() && !h.HTTP10 {
			t.Fatalf("response changed: %q -> %q", raw, out)
		}
		if !sameFields(forwarded(&h), forwarded(&again)) {
			t.Fatalf("fields changed: %q -> %q", forwarded(&h), forwarded(&again))
		}
	})
}

func FuzzChunked(f *testing.F) {
	f.Add([]byte("3\r\nabc\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, data, err := rechunk(raw, 16)
		if err != nil {
			return
		}
		// The canonical framing reads back to the same data and trailers,
		// and is its own canonical form.
		out2, data2, err := rechunk(out, 4096)
		if err != nil {
			t.Fatalf("canonical form %q of accepted %q refused: %v", out, raw, err)
		}
		if !bytes.Equal(data, data2) || !bytes.Equal(out, out2) {
			t.Fatalf("chunked body changed: %q -> %q", raw, out)
		}
		checkFraming(t, chunkLines(t, out))
	})
}

// rechunk copies a chunked body in canonical form and dechunked.
func rechunk(raw []byte, bufSize int) (canonical, data []byte, err error) {
	var out, plain bytes.Buffer
	for i, dst := range []*bytes.Buffer{&out, &plain} {
		w := bufio.NewWriter(dst)
		cc := ChunkedCopy{Dechunk: i == 1, Trailers: new(Head)}
		src := bufio.NewReaderSize(bytes.NewReader(raw), bufSize)
		if _, err := cc.Copy(w, src, nil); err != nil {
			return nil, nil, err
		}
		w.Flush()
	}
	return out.Bytes(), plain.Bytes(), nil
}

// chunkLines returns the framing lines of a canonical chunked body, without
// the chunk data, for checkFraming.
func chunkLines(t *testing.T, b []byte) []byte {
	var lines []byte
	r := bufio.NewReader(bytes.NewReader(b))
	var scratch []byte
	for {
		line, err := readChunkLine(r, &scratch)
		if err != nil {
			t.Fatalf("canonical chunk line: %v", err)
		}
		lines = append(append(lines, line...), "\r\n"...)
		size, err := parseChunkSize(line)
		if err != nil {
			t.Fatalf("canonical chunk size %q: %v", line, err)
		}
		if size == 0 {
			rest, _ := io.ReadAll(r)
			return append(lines, rest...)
		}
		if _, err := r.Discard(int(size)); err != nil {
			t.Fatal(err)
		}
		if err := ReadChunkEnd(r); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
}
