// Package clock reads the monotonic clock alone, for durations on the request
// path. time.Now reads two clocks, the wall clock and the monotonic one (about
// 60 ns on the machines berth is measured on); a duration needs only the
// second, half of that.
package clock

import "time"

// epoch anchors Mono's readings.
var epoch = time.Now()

// Mono reads the monotonic clock, as the time since the process started: two
// readings subtract to the time between them. It never goes back, whatever
// the wall clock does.
func Mono() time.Duration { return time.Since(epoch) }
