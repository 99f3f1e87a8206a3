package http1

import (
	"bufio"
	"errors"
	"io"
)

// maxChunkSize is HAProxy's bound on a chunk size, 2^52-1: larger values are
// refused so that no hop that keeps numbers in floats misreads one.
const maxChunkSize = 1<<52 - 1

// ReadChunkSize reads a chunk-size line (chunk-size BWS [chunk-ext] CRLF)
// and returns the size; 0 is the last chunk. line is scratch for a line
// longer than r's buffer. The extensions are checked, not returned.
func ReadChunkSize(r *bufio.Reader, line *[]byte) (int64, error) {
	b, err := readChunkLine(r, line)
	if err != nil {
		return 0, err
	}
	return parseChunkSize(b)
}

// readChunkLine reads one line of chunk framing, which must end in CRLF, and
// returns it without them.
func readChunkLine(r *bufio.Reader, line *[]byte) ([]byte, error) {
	b, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		*line = append((*line)[:0], b...)
		for err == bufio.ErrBufferFull {
			b, err = r.ReadSlice('\n')
			*line = append(*line, b...)
			if len(*line) > MaxLineBytes {
				return nil, ErrBadChunk
			}
		}
		b = *line
	}
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return nil, ErrBadChunk // a bare LF
	}
	return b[:len(b)-2], nil
}

func parseChunkSize(b []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(b) && isHex(b[i]); i++ {
		n = n<<4 | int64(unhex(b[i]))
		if n > maxChunkSize {
			return 0, ErrBadChunk
		}
	}
	if i == 0 {
		return 0, ErrBadChunk
	}
	for i < len(b) && isOWS(b[i]) {
		i++
	}
	if i < len(b) && (b[i] != ';' || !validChunkExtensions(b[i+1:])) {
		return 0, ErrBadChunk
	}
	return n, nil
}

// validChunkExtensions checks chunk extensions as HAProxy does: no control
// byte but HTAB, quotes balanced, a backslash only inside quotes. No
// recipient needs them; a hop whose own extension parser skips a quoted line
// break must not be given one.
func validChunkExtensions(b []byte) bool {
	quoted, escaped := false, false
	for _, c := range b {
		switch {
		case c < 0x20 && c != '\t' || c == 0x7f:
			return false
		case escaped:
			escaped = false
		case c == '\\':
			if !quoted {
				return false
			}
			escaped = true
		case c == '"':
			quoted = !quoted
		}
	}
	return !quoted && !escaped
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// ReadChunkEnd reads the CRLF that ends a chunk's data.
func ReadChunkEnd(r *bufio.Reader) error {
	b, err := r.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return ErrBadChunk
	}
	r.Discard(2)
	return nil
}

// Body copying. Each copier flushes dst before a read of src that may block,
// so a stream reaches its reader as it comes, and calls refresh (when not
// nil) before such a read, to extend a deadline.

// CopyN copies exactly n bytes from src to dst through src's buffer.
func CopyN(dst *bufio.Writer, src *bufio.Reader, n int64, refresh func()) (int64, error) {
	var done int64
	for done < n {
		if err := flushBeforeBlocking(dst, src, refresh); err != nil {
			return done, err
		}
		if _, err := src.Peek(1); err != nil {
			return done, err
		}
		buf, _ := src.Peek(int(min(int64(src.Buffered()), n-done)))
		w, err := dst.Write(buf)
		src.Discard(w)
		done += int64(w)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// CopyUntilEOF copies src to dst until src ends: the framing of a response
// without a length.
func CopyUntilEOF(dst *bufio.Writer, src *bufio.Reader, refresh func()) (int64, error) {
	n, err := CopyN(dst, src, 1<<62, refresh)
	if errors.Is(err, io.EOF) {
		return n, nil
	}
	return n, err
}

// ChunkedCopy copies a chunked body from src to dst and returns the bytes
// written. It writes the framing anew (HEX CRLF, data, CRLF; the trailer
// fields as field lines), or, with Dechunk, the data alone for a reader
// that takes a body up to the close (an HTTP/1.0 client). ErrBadChunk, and
// the field errors of a trailer, mean src broke the framing.
type ChunkedCopy struct {
	Dechunk bool
	// Trailers is scratch: the trailer section is read into it.
	Trailers *Head
	// Line is scratch for a chunk-size line longer than src's buffer.
	Line []byte
}

// Copy runs the copy; refresh is called before each read that may block.
func (cc *ChunkedCopy) Copy(dst *bufio.Writer, src *bufio.Reader, refresh func()) (int64, error) {
	var total int64
	var hex [16]byte
	for {
		if err := flushBeforeBlocking(dst, src, refresh); err != nil {
			return total, err
		}
		size, err := ReadChunkSize(src, &cc.Line)
		if err != nil {
			return total, err
		}
		if size == 0 {
			break
		}
		if !cc.Dechunk {
			n, _ := dst.Write(appendHex(hex[:0], size))
			total += int64(n)
		}
		n, err := CopyN(dst, src, size, refresh)
		total += n
		if err == nil {
			if err = flushBeforeBlocking(dst, src, refresh); err == nil {
				err = ReadChunkEnd(src)
			}
		}
		if err != nil {
			return total, err
		}
		if !cc.Dechunk {
			n, _ := dst.WriteString("\r\n")
			total += int64(n)
		}
	}
	if err := flushBeforeBlocking(dst, src, refresh); err != nil {
		return total, err
	}
	if err := cc.Trailers.ReadTrailers(src); err != nil {
		return total, err
	}
	if cc.Dechunk {
		return total, nil
	}
	n, _ := dst.WriteString("0\r\n")
	total += int64(n)
	t := cc.Trailers
	for i := range t.Fields {
		// Framing, routing and connection fields have no place in trailers
		// (RFC 9110 6.5.1): a hop that merged them into the head would be
		// misled.
		if f := &t.Fields[i]; f.Kind == FieldOther {
			total += int64(t.WriteFieldLine(dst, f))
		}
	}
	n, err := dst.WriteString("\r\n")
	return total + int64(n), err
}

// appendHex appends n in hexadecimal and CRLF: a chunk-size line.
func appendHex(b []byte, n int64) []byte {
	const digits = "0123456789abcdef"
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = digits[n&0xf]
		n >>= 4
		if n == 0 {
			break
		}
	}
	return append(append(b, tmp[i:]...), '\r', '\n')
}

// WriteField writes a field line in canonical form and returns its length.
func WriteField(w *bufio.Writer, name, value []byte) int {
	w.Write(name)
	w.WriteString(": ")
	w.Write(value)
	w.WriteString("\r\n")
	return len(name) + len(value) + 4
}

func flushBeforeBlocking(dst *bufio.Writer, src *bufio.Reader, refresh func()) error {
	if src.Buffered() > 0 {
		return nil
	}
	if refresh != nil {
		refresh()
	}
	if dst.Buffered() > 0 {
		return dst.Flush()
	}
	return nil
}

// WriteFieldLine writes field f of h in canonical form and returns its
// length: when the line as read is canonical already ("name: value" CRLF),
// it goes out as it is, in one write.
func (h *Head) WriteFieldLine(w *bufio.Writer, f *Field) int {
	if f.Value.Start == f.Name.End+2 && h.Raw[f.Name.End+1] == ' ' &&
		f.Value.End+1 < len(h.Raw) && h.Raw[f.Value.End] == '\r' && h.Raw[f.Value.End+1] == '\n' {
		n, _ := w.Write(h.Raw[f.Name.Start : f.Value.End+2])
		return n
	}
	return WriteField(w, f.Name.Of(h.Raw), f.Value.Of(h.Raw))
}
