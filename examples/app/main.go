// Command app is the tiny HTTP server of berth's demo and integration tests. It
// says which replica answered, can hold a request open to create in-flight
// traffic, and drains gracefully on SIGTERM the way a well-behaved service does,
// so the balancer's draining can be watched and tested.
//
// Environment: PORT (default 8080), NAME (default the hostname, which is the
// container ID in Docker), VERSION (default v1), EXIT_ON_SIGTERM=1 to exit at
// once on SIGTERM instead of draining (the flag -exit-on-sigterm does the same).
//
// Endpoints:
//
//	GET /                 "<name> <version>\n"
//	GET /health           200 "ok"
//	GET /sleep?ms=N       waits N milliseconds, then answers like /
//	GET /status?code=N    answers status N with the body of /
//	POST /exit            answers, then exits at once with status 1, as a
//	                      crashing process does (for tests of a replica that
//	                      exits on its own)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// shutdownTimeout bounds how long in-flight requests may take to finish after
// SIGTERM; it matches the demo's stop_grace_period so Docker never kills first.
const shutdownTimeout = 30 * time.Second

// maxSleep keeps /sleep from pinning a connection for longer than a test runs.
const maxSleep = 10 * time.Minute

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(os.Args[1:], logger); err != nil {
		logger.Error("app stopped", "err", err)
		os.Exit(1)
	}
}

func run(args []string, logger *slog.Logger) error {
	flags := flag.NewFlagSet("app", flag.ContinueOnError)
	exitOnSigterm := flags.Bool("exit-on-sigterm", os.Getenv("EXIT_ON_SIGTERM") == "1",
		"exit at once on SIGTERM instead of finishing in-flight requests (env EXIT_ON_SIGTERM=1)")
	if err := flags.Parse(args); err != nil {
		return err
	}

	port := envOr("PORT", "8080")
	name := os.Getenv("NAME")
	if name == "" {
		hostname, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("app: no NAME set and no hostname: %w", err)
		}
		name = hostname
	}
	version := envOr("VERSION", "v1")
	healthStatus, err := strconv.Atoi(envOr("HEALTH_STATUS", "200"))
	if err != nil || healthStatus < 200 || healthStatus > 599 {
		return fmt.Errorf("app: HEALTH_STATUS %q: want an HTTP status from 200 to 599", os.Getenv("HEALTH_STATUS"))
	}

	listener, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return fmt.Errorf("app: listen on port %s (set PORT to another port): %w", port, err)
	}
	logger.Info("app listening", "addr", listener.Addr().String(), "name", name, "version", version,
		"exit_on_sigterm", *exitOnSigterm)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	crash := func() {
		logger.Error("exiting at once, as POST /exit asked")
		os.Exit(1)
	}
	return serve(listener, newHandler(name, version, healthStatus, crash), signals, *exitOnSigterm, logger)
}

// serve answers on listener until a signal arrives. Then it either returns at
// once (abrupt: the listener and every connection are closed) or shuts down
// gracefully: it stops accepting, closes idle keep-alive connections and waits
// up to shutdownTimeout for in-flight requests.
func serve(listener net.Listener, handler http.Handler, signals <-chan os.Signal, abrupt bool, logger *slog.Logger) error {
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	select {
	case err := <-served:
		return fmt.Errorf("app: serve: %w", err)
	case sig := <-signals:
		if abrupt {
			logger.Info("signal received, exiting at once", "signal", sig.String())
			return server.Close()
		}
		logger.Info("signal received, finishing in-flight requests", "signal", sig.String(),
			"timeout", shutdownTimeout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		return fmt.Errorf("app: graceful shutdown did not finish within %s: %w", shutdownTimeout, err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("app: serve: %w", err)
	}
	logger.Info("drained, exiting")
	return nil
}

// newHandler returns the app's routes; every answer names the replica and its
// version so a client can tell which target the balancer chose. /health
// answers healthStatus until /health/set?code=N changes it (to make a replica
// fail its health checks in demos and tests). POST /exit calls crash once its
// answer is sent.
func newHandler(name, version string, healthStatus int, crash func()) http.Handler {
	identity := name + " " + version + "\n"
	var health atomic.Int32
	health.Store(int32(healthStatus))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, identity)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, int(health.Load()), "ok\n")
	})
	mux.HandleFunc("GET /health/set", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil || code < 200 || code > 599 {
			writeText(w, http.StatusBadRequest, "code must be an HTTP status from 200 to 599\n")
			return
		}
		health.Store(int32(code))
		writeText(w, http.StatusOK, identity)
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) { // any method: tests send POSTs, which are never retried
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxSleep {
			writeText(w, http.StatusBadRequest,
				fmt.Sprintf("ms must be a whole number of milliseconds from 0 to %d\n", maxSleep.Milliseconds()))
			return
		}
		timer := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
			writeText(w, http.StatusOK, identity)
		case <-r.Context().Done():
			// The client left; nobody is there to read an answer.
		}
	})
	mux.HandleFunc("POST /exit", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, identity)
		http.NewResponseController(w).Flush()
		crash()
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil || code < 200 || code > 599 {
			writeText(w, http.StatusBadRequest, "code must be an HTTP status from 200 to 599\n")
			return
		}
		writeText(w, code, identity)
	})
	return mux
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func envOr(key, fallback string) string {
	if value := os.Getenv(key); value != "" {
		return value
	}
	return fallback
}
