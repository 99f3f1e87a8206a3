// Command app is the HTTP server of the discovery/docker integration test. It answers
// every request with its hostname and, on SIGTERM or SIGINT, keeps running for
// STOP_DELAY (default 1s) before it exits, so the draining that the kill event starts
// stays visible before the die event removes the target.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	stopDelay := time.Second
	if raw := os.Getenv("STOP_DELAY"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil {
			log.Fatalf("app: STOP_DELAY=%q: want a duration such as 1s: %v", raw, err)
		}
		stopDelay = d
	}
	hostname, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, hostname)
	})
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		time.Sleep(stopDelay)
		os.Exit(0)
	}()
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
