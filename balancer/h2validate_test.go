package balancer

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berth-lb/berth/internal/h2raw"
	"golang.org/x/net/http2"
)

// TestH2DowngradeRefusesWhatHTTP1CannotCarry sends HTTP/2 requests that an
// HTTP/1.1 head cannot carry faithfully to a listener in front of a raw
// recording target, behind a deny rule: each is refused (400 from berth, or
// a stream reset from x/net/http2) and nothing reaches the target; the
// requests that can be carried arrive with the framing their body needs.
func TestH2DowngradeRefusesWhatHTTP1CannotCarry(t *testing.T) {
	rb := newRecordingBackend(t)
	cfg := webConfig(serving("a", rb.addr))
	cfg.Listeners[0].Rules = []Rule{{Priority: 1, Paths: []string{"/admin*"}, Action: Action{Fixed: &FixedResponse{Status: 403, Body: "denied"}}}}
	lb := start(t, cfg)
	addr := lb.Addr("web")
	const host = "public.example"
	refused := func(status int) h2raw.Answer {
		if status == 0 {
			return h2raw.Answer{Reset: http2.ErrCodeProtocol}
		}
		return h2raw.Answer{Status: status, Body: "400 Bad Request\n"}
	}
	forwarded := h2raw.Answer{Status: 200, Body: "recorded"}
	for _, tc := range []struct {
		name   string
		fields [][2]string
		body   []byte
		want   h2raw.Answer
		// head is how the target's bytes start, absent what they must not hold.
		head   string
		absent []string
	}{
		// Refused by berth (x/net lets them through).
		{name: "a space in :method smuggles a path past the rules",
			fields: h2raw.Fields("GET /admin/secret", "/raw/public", host), want: refused(400)},
		{name: "a space in :path", fields: h2raw.Fields("GET", "/raw/public /admin/secret", host), want: refused(400)},
		{name: "a tab in :method", fields: h2raw.Fields("GET\t/admin", "/raw/public", host), want: refused(400)},
		{name: "a separator in :method", fields: h2raw.Fields("GET/admin", "/raw/public", host), want: refused(400)},
		{name: "non-ASCII in :path", fields: h2raw.Fields("GET", "/raw/\xc3\xa9", host), want: refused(400)},
		{name: "a fragment in :path", fields: h2raw.Fields("GET", "/raw/x#/../../admin", host), want: refused(400)},
		{name: "* for GET", fields: h2raw.Fields("GET", "*", host), want: refused(400)},
		{name: "CONNECT", fields: [][2]string{{":method", "CONNECT"}, {":authority", "internal.example:22"}}, want: refused(400)},
		{name: "neither :authority nor Host", fields: h2raw.Fields("GET", "/raw/public", ""), want: refused(400)},
		// Refused by x/net/http2 before berth's handler runs: kept here so
		// that an x/net upgrade that stops refusing them is noticed.
		{name: "a control byte in :method", fields: h2raw.Fields("GE\x01T", "/raw/public", host), want: refused(0)},
		{name: "DEL in :path", fields: h2raw.Fields("GET", "/raw/\x7f", host), want: refused(0)},
		{name: ":authority and Host disagree",
			fields: h2raw.Fields("GET", "/raw/public", host, "host", "internal.example"), want: refused(0)},
		{name: "CR LF in a value",
			fields: h2raw.Fields("GET", "/raw/public", host, "x-a", "1\r\nGET /admin/secret HTTP/1.1"), want: refused(0)},
		{name: "a bare LF in a value", fields: h2raw.Fields("GET", "/raw/public", host, "x-a", "1\nx-b: 2"), want: refused(0)},
		{name: "NUL in a value", fields: h2raw.Fields("GET", "/raw/public", host, "x-a", "1\x002"), want: refused(0)},
		{name: "a space in a name", fields: h2raw.Fields("GET", "/raw/public", host, "x a", "1"), want: refused(0)},
		{name: "a colon in a name", fields: h2raw.Fields("GET", "/raw/public", host, "x:a", "1"), want: refused(0)},
		// Malformed by RFC 9113 8.2.2: a reset, not a 400.
		{name: "a connection-specific field", fields: h2raw.Fields("GET", "/raw/public", host, "connection", "content-length"), want: refused(0)},
		{name: "Transfer-Encoding", fields: h2raw.Fields("POST", "/raw/public", host, "transfer-encoding", "chunked"), want: refused(0)},
		{name: "TE other than trailers", fields: h2raw.Fields("GET", "/raw/public", host, "te", "gzip"), want: refused(0)},
		// Forwarded.
		{name: "TE: trailers", fields: h2raw.Fields("GET", "/raw/public", host, "te", "trailers"), want: forwarded,
			head: "GET /raw/public HTTP/1.1\r\n", absent: []string{"te", "content-length"}},
		{name: "GET without a body", fields: h2raw.Fields("GET", "/raw/public?q=1", host), want: forwarded,
			head: "GET /raw/public?q=1 HTTP/1.1\r\nHost: public.example\r\n", absent: []string{"content-length", "transfer-encoding"}},
		{name: "Host without :authority", fields: h2raw.Fields("GET", "/raw/public", "", "host", host), want: forwarded,
			head: "GET /raw/public HTTP/1.1\r\nHost: public.example\r\n", absent: []string{"content-length", "transfer-encoding"}},
		{name: "OPTIONS *", fields: h2raw.Fields("OPTIONS", "*", host), want: forwarded,
			head: "OPTIONS * HTTP/1.1\r\nHost: public.example\r\n", absent: []string{"content-length", "transfer-encoding"}},
		{name: "POST with a length", fields: h2raw.Fields("POST", "/raw/upload", host, "content-length", "5"), body: []byte("hello"),
			want: forwarded, head: "POST /raw/upload HTTP/1.1\r\n", absent: []string{"transfer-encoding"}},
		{name: "POST declaring an empty body", fields: h2raw.Fields("POST", "/raw/upload", host, "content-length", "0"),
			want: forwarded, head: "POST /raw/upload HTTP/1.1\r\n", absent: []string{"transfer-encoding"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb.take()
			got, err := h2raw.DoOnce(addr, tc.fields, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("answer %v, want %v", got, tc.want)
			}
			sent := string(rb.take())
			if tc.head == "" {
				if sent != "" {
					t.Errorf("the target received %q, want nothing", sent)
				}
				return
			}
			head, body, _ := strings.Cut(sent, "\r\n\r\n")
			if !strings.HasPrefix(sent, tc.head) {
				t.Errorf("the target received %q, want it to start with %q", sent, tc.head)
			}
			for _, name := range tc.absent {
				if strings.Contains(strings.ToLower(head), "\r\n"+name+":") {
					t.Errorf("the target received %q, want no %s", head, name)
				}
			}
			if string(tc.body) != body {
				t.Errorf("the target received the body %q, want %q", body, tc.body)
			}
			if cl := tc.fields[len(tc.fields)-1]; cl[0] == "content-length" && !strings.Contains(head, "\r\nContent-Length: "+cl[1]) {
				t.Errorf("the target received %q, want Content-Length: %s", head, cl[1])
			}
		})
	}
	// Still serving, also an HTTP/1.1 client.
	if code, body, _ := get(t, &http.Client{}, "http://"+addr+"/raw/after"); code != 200 || body != "recorded" {
		t.Errorf("after the attacks: %d %q, want 200 \"recorded\"", code, body)
	}
}
