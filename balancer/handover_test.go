package balancer

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/h2raw"
	"golang.org/x/net/http2"
)

// TestHandOverToASuccessor: a successor balancer serves on its
// predecessor's sockets, the same addresses; it accepts only once told to;
// the predecessor's response in flight at its shutdown says Connection:
// close, and afterwards the successor answers everything.
func TestHandOverToASuccessor(t *testing.T) {
	slowOld := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "old")
	})
	fresh := backend(t, "new", nil)
	config := func(target string, listeners ...ListenerConfig) Config {
		cfg := webConfig(serving("a", target))
		cfg.Listeners = append(cfg.Listeners, listeners...)
		return cfg
	}
	dns := ListenerConfig{Name: "dns", Protocol: ProtocolUDP, Address: "127.0.0.2:0", Default: Action{Forward: "web"}}
	gone := ListenerConfig{Name: "gone", Address: "127.0.0.3:0", Default: Action{Forward: "web"}}
	old := New(nil)
	if err := old.Apply(config(addrOf(slowOld), dns, gone)); err != nil {
		t.Fatal(err)
	}
	socks, err := old.Sockets()
	if err != nil {
		t.Fatal(err)
	}
	var networks []string
	for _, s := range socks {
		networks = append(networks, s.Listener+"/"+s.Network)
	}
	slices.Sort(networks)
	if want := []string{"dns/udp", "gone/tcp", "web/tcp"}; !slices.Equal(networks, want) {
		t.Fatalf("sockets %v, want %v", networks, want)
	}

	next := start(t, Config{})
	next.Inherit(socks)
	if err := next.Apply(config(addrOf(fresh), dns)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "dns"} {
		if next.Addr(name) != old.Addr(name) {
			t.Fatalf("listener %s: successor on %s, predecessor on %s", name, next.Addr(name), old.Addr(name))
		}
	}
	if unused := next.CloseUnused(); !slices.Equal(unused, []string{"gone"}) {
		t.Fatalf("CloseUnused = %v, want [gone]", unused)
	}
	url := "http://" + old.Addr("web")
	freshConns := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 10 {
		if _, body, _ := get(t, freshConns, url+"/"); body != "old" {
			t.Fatalf("before StartAccepting the successor answered %q", body)
		}
	}

	// A keep-alive connection idle long enough to park (no goroutine) is
	// closed at once by the predecessor's drain.
	parked := dial(t, old.Addr("web"))
	parkedReader := bufio.NewReader(parked)
	io.WriteString(parked, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, err := http.ReadResponse(parkedReader, nil); err != nil {
		t.Fatal(err)
	} else if body, _ := io.ReadAll(resp.Body); string(body) != "old" {
		t.Fatalf("the predecessor answered %q", body)
	}
	waitParked(t)

	keepAlive := &http.Client{Timeout: 5 * time.Second}
	type answer struct {
		body  string
		close bool
	}
	inFlight := make(chan answer, 1)
	go func() {
		resp, err := keepAlive.Get(url + "/slow")
		if err != nil {
			inFlight <- answer{body: err.Error()}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inFlight <- answer{string(body), resp.Close}
	}()
	for old.InFlight("a") == 0 {
		time.Sleep(time.Millisecond)
	}
	next.StartAccepting()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := old.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	parked.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := parkedReader.ReadByte(); err != io.EOF {
		t.Fatalf("the parked connection after the predecessor's shutdown: %v, want EOF", err)
	}
	if a := <-inFlight; a.body != "old" || !a.close {
		t.Fatalf("the request in flight at the predecessor's shutdown: %q, Connection: close %v; want old and true", a.body, a.close)
	}
	for _, c := range []*http.Client{freshConns, keepAlive} {
		for range 10 {
			if _, body, _ := get(t, c, url+"/"); body != "new" {
				t.Fatalf("after the hand-over %q answered", body)
			}
		}
	}
}

// TestShutdownSendsGoAway: an HTTP/2 client with a stream in flight when
// the balancer drains gets GOAWAY (no error) and its stream's answer.
func TestShutdownSendsGoAway(t *testing.T) {
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "done")
	})
	lb := New(nil)
	if err := lb.Apply(webConfig(serving("a", addrOf(be)))); err != nil {
		t.Fatal(err)
	}
	c, err := h2raw.Dial(lb.Addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Send(h2raw.Fields("GET", "/", "example.com"), nil); err != nil {
		t.Fatal(err)
	}
	fr := c.Framer()
	for lb.InFlight("a") == 0 {
		time.Sleep(time.Millisecond)
	}
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- lb.Shutdown(ctx)
	}()
	var goAway *http2.GoAwayFrame
	status, body := "", ""
	for done := false; !done; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames (GOAWAY %v, status %q, body %q): %v", goAway, status, body, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			goAway = f
		case *http2.MetaHeadersFrame:
			status = f.PseudoValue("status")
			done = f.StreamEnded()
		case *http2.DataFrame:
			body += string(f.Data())
			done = f.StreamEnded()
		}
	}
	if goAway == nil || goAway.ErrCode != http2.ErrCodeNo || status != "200" || body != "done" {
		t.Fatalf("GOAWAY %v, stream answered %q %q; want GOAWAY NO_ERROR and 200 \"done\"", goAway, status, body)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
