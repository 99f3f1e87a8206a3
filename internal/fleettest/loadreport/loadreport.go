// Package loadreport is the JSON document of the fleet test's load client,
// shared by the client (which prints it) and the harness (which reads it).
package loadreport

// Result is the JSON the load client prints. Times are Unix nanoseconds, so the
// caller, on the same machine, can compare them with its own clock.
type Result struct {
	// Sent is how many requests were sent: rate times duration, on schedule
	// or caught up; OK + Failed == Sent once every request has ended.
	Sent   int `json:"sent"`
	OK     int `json:"ok"`
	Failed int `json:"failed"`
	// Answers counts the 200 answers by the first word of their body (the
	// example app's replica name).
	Answers map[string]int `json:"answers"`
	// Failures holds the first maxFailures failed requests, in send order.
	Failures []Failure `json:"failures"`
	// FirstFailureSent and LastFailureSent are the send times of the earliest
	// and latest failed requests over all of them; zero when none failed.
	FirstFailureSent int64 `json:"first_failure_sent"`
	LastFailureSent  int64 `json:"last_failure_sent"`
	// FirstFailureEnded is when the earliest failure was seen; a request
	// sent before an event may fail because of it.
	FirstFailureEnded int64 `json:"first_failure_ended"`
	Started           int64 `json:"started"`
	Finished          int64 `json:"finished"`
}

// Failure is one failed request.
type Failure struct {
	Sent  int64  `json:"sent"`
	Ended int64  `json:"ended"`
	Error string `json:"error"`
}
