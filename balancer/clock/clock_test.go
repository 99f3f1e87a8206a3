package clock

import (
	"testing"
	"time"
)

func TestMonoMeasuresTheTimeBetweenReadings(t *testing.T) {
	start, wall := Mono(), time.Now()
	time.Sleep(20 * time.Millisecond)
	got, want := Mono()-start, time.Since(wall)
	if got < 20*time.Millisecond || got > want+time.Millisecond {
		t.Fatalf("Mono advanced %v over a sleep of 20ms that time.Since measured as %v", got, want)
	}
}

func BenchmarkMono(b *testing.B) {
	for b.Loop() {
		Mono()
	}
}

func BenchmarkTimeNow(b *testing.B) {
	for b.Loop() {
		time.Now()
	}
}
