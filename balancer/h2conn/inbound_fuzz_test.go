package h2conn

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzInbound feeds Inbound arbitrary bytes after the preface, as a client
// may send them. It must not panic; what it passes on is what came, in
// order, but for SETTINGS it rewrote (shorter) and one field added to a
// malformed header block; and it ends with the input's end, a frame cut
// short, or a rapid reset. Its seeds are in testdata/fuzz/FuzzInbound.
func FuzzInbound(f *testing.F) {
	f.Fuzz(func(t *testing.T, frames []byte) {
		in := NewInbound(io.MultiReader(bytes.NewReader([]byte(Preface)), bytes.NewReader(frames)))
		out, err := io.ReadAll(in)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrRapidReset) {
			t.Fatalf("Inbound ended with %v", err)
		}
		// Each frame header is 9 bytes: at most one marking field per frame.
		if limit := len(Preface) + len(frames) + (len(frames)/h2FrameHeaderLen+1)*(h2FrameHeaderLen+len(h2Malformed)); len(out) > limit {
			t.Fatalf("Inbound passed on %d bytes of %d", len(out), len(Preface)+len(frames))
		}
		if !bytes.HasPrefix(out, []byte(Preface)) {
			t.Fatal("Inbound did not pass the preface on first")
		}
	})
}
