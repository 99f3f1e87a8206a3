package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	server := httptest.NewServer(newHandler("app-1", "v7", 200, noCrash(t)))
	defer server.Close()

	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/", http.StatusOK, "app-1 v7\n"},
		{"/health", http.StatusOK, "ok\n"},
		{"/sleep?ms=5", http.StatusOK, "app-1 v7\n"},
		{"/sleep?ms=0", http.StatusOK, "app-1 v7\n"},
		{"/sleep", http.StatusBadRequest, "ms must be a whole number of milliseconds from 0 to 600000\n"},
		{"/sleep?ms=-1", http.StatusBadRequest, "ms must be a whole number of milliseconds from 0 to 600000\n"},
		{"/sleep?ms=600001", http.StatusBadRequest, "ms must be a whole number of milliseconds from 0 to 600000\n"},
		{"/status?code=503", http.StatusServiceUnavailable, "app-1 v7\n"},
		{"/status?code=201", http.StatusCreated, "app-1 v7\n"},
		{"/status?code=abc", http.StatusBadRequest, "code must be an HTTP status from 200 to 599\n"},
		{"/status?code=600", http.StatusBadRequest, "code must be an HTTP status from 200 to 599\n"},
		{"/nothing-here", http.StatusNotFound, "404 page not found\n"},
		// In order: the health status changes until set back.
		{"/health/set?code=503", http.StatusOK, "app-1 v7\n"},
		{"/health", http.StatusServiceUnavailable, "ok\n"},
		{"/health/set?code=99", http.StatusBadRequest, "code must be an HTTP status from 200 to 599\n"},
		{"/health/set?code=200", http.StatusOK, "app-1 v7\n"},
		{"/health", http.StatusOK, "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := get(t, server.URL+tt.path)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// noCrash fails the test if the handler exits.
func noCrash(t *testing.T) func() {
	return func() { t.Error("the handler exited, and only POST /exit may") }
}

func TestExitAnswersThenCrashes(t *testing.T) {
	crashed := make(chan struct{}, 1)
	server := httptest.NewServer(newHandler("app-1", "v1", 200, func() { crashed <- struct{}{} }))
	defer server.Close()

	resp, err := http.Post(server.URL+"/exit", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "app-1 v1\n" {
		t.Errorf("POST /exit = %d %q, want 200 %q", resp.StatusCode, body, "app-1 v1\n")
	}
	select {
	case <-crashed:
	case <-time.After(5 * time.Second):
		t.Fatal("POST /exit answered but did not exit")
	}
	if status, _ := get(t, server.URL+"/exit"); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /exit = %d, want 405: only a POST exits", status)
	}
}

func TestSleepHoldsTheRequest(t *testing.T) {
	server := httptest.NewServer(newHandler("app-1", "v1", 200, noCrash(t)))
	defer server.Close()

	start := time.Now()
	get(t, server.URL+"/sleep?ms=100")
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond {
		t.Errorf("/sleep?ms=100 answered after %s, want at least 100ms", elapsed)
	}
}

func TestServeOnSignal(t *testing.T) {
	tests := []struct {
		name   string
		abrupt bool
		// wantInFlightOK says whether a request in flight at SIGTERM gets its answer.
		wantInFlightOK bool
	}{
		{name: "graceful shutdown finishes in-flight requests", abrupt: false, wantInFlightOK: true},
		{name: "exit on sigterm drops in-flight requests", abrupt: true, wantInFlightOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listener, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			signals := make(chan os.Signal, 1)
			served := make(chan error, 1)
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			requestStarted := make(chan struct{}, 1)
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/sleep" {
					requestStarted <- struct{}{}
				}
				newHandler("app-1", "v1", 200, noCrash(t)).ServeHTTP(w, r)
			})
			go func() { served <- serve(listener, handler, signals, tt.abrupt, logger) }()

			url := "http://" + listener.Addr().String()
			waitUntilAnswering(t, url+"/health")

			inFlight := make(chan error, 1)
			go func() {
				resp, err := http.Get(url + "/sleep?ms=300")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				inFlight <- err
			}()
			// The signal must arrive while the request is being served, not before.
			<-requestStarted
			signals <- syscall.SIGTERM

			if err := <-inFlight; (err == nil) != tt.wantInFlightOK {
				t.Errorf("in-flight request error = %v, want success %v", err, tt.wantInFlightOK)
			}
			if err := <-served; err != nil {
				t.Errorf("serve returned %v, want nil", err)
			}
			if _, err := http.Get(url + "/health"); err == nil {
				t.Error("a new request was answered after shutdown")
			}
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func waitUntilAnswering(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer within 5s", url)
}
