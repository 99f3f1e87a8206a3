// Package pool is the target pool: the state of every target the balancer
// sends to and the choice of one for each request or connection.
//
// A Target lives outside the routing snapshots, keyed by ID by the balancer's
// Apply, so its in-flight count, counters, passive health, slow start clock
// and idle upstream connections (Get, Put, Dial) survive every change. A Group
// is the immutable view of a target group in one snapshot: its rotation
// (Interleave: each serving target as often as its weight), its algorithm and
// timeouts; Pick and PickFor choose a target by the algorithm, slow start and
// anomaly mitigation (damp), stickiness and passive health (avoid), without a
// lock or an allocation. Connect dials with the host's adaptive connect
// timeout (connecttime.go) and TLS toward https groups. ClientIP and HashBytes
// are a client's key for source_hash, the same for both fronts.
//
// It must not know the protocols that use it: it imports no other balancer
// package but stats, parses no request and writes no response. What runs per
// request (Pick, Get, Put, the passive health counters) must not block, take
// a lock held across I/O, or allocate.
package pool
