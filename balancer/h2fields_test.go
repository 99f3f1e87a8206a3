package balancer

import (
	"strings"
	"testing"

	"golang.org/x/net/http2"

	"github.com/berth-lb/berth/internal/h2raw"
)

// TestH2ConnectionSpecificFieldsInSplitBlocks sends header blocks split over
// a padded HEADERS frame with a priority and a CONTINUATION, on one
// connection whose HPACK table fills as it goes: the server must find a
// connection-specific field in them (its stream reset), and pass the others
// on intact.
func TestH2ConnectionSpecificFieldsInSplitBlocks(t *testing.T) {
	rb := newRecordingBackend(t)
	lb := start(t, webConfig(serving("a", rb.addr)))
	c, err := h2raw.Dial(lb.Addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Split = true
	for i, tc := range []struct {
		fields [][2]string
		want   h2raw.Answer
	}{
		{h2raw.Fields("GET", "/one", "a.example", "x-long", strings.Repeat("v", 300)), h2raw.Answer{Status: 200, Body: "recorded"}},
		{h2raw.Fields("GET", "/two", "a.example", "x-long", strings.Repeat("v", 300), "keep-alive", "timeout=5"), h2raw.Answer{Reset: http2.ErrCodeProtocol}},
		{h2raw.Fields("GET", "/three", "a.example", "x-long", strings.Repeat("v", 300), "te", "trailers"), h2raw.Answer{Status: 200, Body: "recorded"}},
		{h2raw.Fields("GET", "/four", "a.example", "upgrade", "h2c"), h2raw.Answer{Reset: http2.ErrCodeProtocol}},
		{h2raw.Fields("GET", "/five", "a.example", "x-long", strings.Repeat("v", 300)), h2raw.Answer{Status: 200, Body: "recorded"}},
	} {
		got, err := c.Do(tc.fields, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got != tc.want {
			t.Errorf("request %d (%s): %v, want %v", i, tc.fields[2][1], got, tc.want)
		}
	}
	sent := string(rb.take())
	if n := strings.Count(sent, strings.Repeat("v", 300)); n != 3 || strings.Contains(sent, "/two") || strings.Contains(sent, "/four") {
		t.Errorf("the target received %q, want /one, /three and /five with their x-long", sent)
	}
}
