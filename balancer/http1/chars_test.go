package http1

import "testing"

// validValue's eight-at-a-time path must agree with the table for every
// byte at every position.
func TestValidValueAgreesWithTable(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 17; pos++ {
			b := []byte("abcdefghijklmnopq")
			b[pos] = byte(c)
			if got, want := validValue(b), valueChar[c]; got != want {
				t.Fatalf("byte %#x at %d: validValue %v, want %v", c, pos, got, want)
			}
		}
	}
}
