package deadline

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/tcppair"
)

// recorder counts the deadlines set on it.
type recorder struct{ read, write []time.Time }

func (r *recorder) SetReadDeadline(t time.Time) error  { r.read = append(r.read, t); return nil }
func (r *recorder) SetWriteDeadline(t time.Time) error { r.write = append(r.write, t); return nil }

func TestExtendSetsOnlyWhenTheDeadlineMovesByTheSlack(t *testing.T) {
	base := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	const long = 2 * time.Minute // its slack: a second (a sixty-fourth would be more)
	tests := []struct {
		name    string
		first   time.Duration // timeout of the first extension, at base
		at      time.Duration // when the second comes, after base
		timeout time.Duration // its timeout
		sets    bool
	}{
		{"same timeout a millisecond later", long, time.Millisecond, long, false},
		{"same timeout just under the slack later", long, time.Second - time.Nanosecond, long, false},
		{"same timeout the slack later", long, time.Second, long, true},
		{"a shorter timeout must come earlier", long, time.Millisecond, long / 2, true},
		{"a longer timeout beyond the slack", long, 0, long + time.Second, true},
		{"a short timeout's slack is a sixty-fourth", 640 * time.Millisecond, 9 * time.Millisecond, 640 * time.Millisecond, false},
		{"a short timeout past its slack", 640 * time.Millisecond, 10 * time.Millisecond, 640 * time.Millisecond, true},
		{"after the deadline passed", long, 2 * long, long, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Coarse
			var r recorder
			c.ExtendRead(&r, base, tt.first)
			c.ExtendWrite(&r, base, tt.first)
			c.ExtendRead(&r, base.Add(tt.at), tt.timeout)
			c.ExtendWrite(&r, base.Add(tt.at), tt.timeout)
			want := 1
			if tt.sets {
				want = 2
			}
			if len(r.read) != want || len(r.write) != want {
				t.Fatalf("set %d read and %d write deadlines, want %d each", len(r.read), len(r.write), want)
			}
			if got := r.read[want-1]; !got.Equal(base.Add(tt.at+tt.timeout)) && tt.sets {
				t.Fatalf("read deadline %v, want %v", got, base.Add(tt.at+tt.timeout))
			}
		})
	}
}

func TestExactSetsAreRemembered(t *testing.T) {
	base := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	var c Coarse
	var r recorder
	c.ExtendRead(&r, base, time.Minute)
	// A wake (an exact deadline now) must not be undone by the trust in the
	// earlier one, nor must "none" (zero).
	c.SetRead(&r, base)
	c.ExtendRead(&r, base.Add(time.Millisecond), time.Minute)
	c.Set(&r, time.Time{})
	c.ExtendRead(&r, base.Add(2*time.Millisecond), time.Minute)
	c.ExtendWrite(&r, base.Add(2*time.Millisecond), time.Minute)
	if len(r.read) != 5 || len(r.write) != 2 {
		t.Fatalf("set %d read and %d write deadlines, want 5 and 2", len(r.read), len(r.write))
	}
}

// A coarse read deadline on a real connection times the read out within
// the slack before its timeout, never after.
func TestCoarseDeadlineFiresWithinTheSlack(t *testing.T) {
	_, server := tcppair.Loopback(t)

	const timeout = 640 * time.Millisecond // slack 10 ms
	var c Coarse
	start := time.Now()
	c.ExtendRead(server, start, timeout)
	// Extensions within the slack keep the first deadline.
	for i := range 5 {
		c.ExtendRead(server, start.Add(time.Duration(i)*time.Millisecond), timeout)
	}
	_, err := server.Read(make([]byte, 1))
	took := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if took < timeout-timeout/64 {
		t.Fatalf("timed out after %v, earlier than %v less the slack", took, timeout)
	}
}
