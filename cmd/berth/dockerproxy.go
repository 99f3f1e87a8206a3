package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/berth-lb/berth/dockerproxy"
)

// runDockerProxy implements `berth docker-proxy`: a read-only Docker API for
// the agent (docker.host), so that it needs no Docker socket of its own.
func runDockerProxy(args []string, _, stderr io.Writer) error {
	fs := pflag.NewFlagSet("berth docker-proxy", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "unix:///run/berth/docker.sock", "where the agent connects: unix:///PATH, or tcp://127.0.0.1:PORT (loopback only)")
	docker := fs.String("docker", "unix:///var/run/docker.sock", "the Docker engine: unix:///PATH or tcp://HOST:PORT")
	if help, err := parseFlagsOnly(fs, args); help || err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	handler, err := dockerproxy.Handler(*docker, log)
	if err != nil {
		return err
	}
	ln, err := dockerproxy.Listen(*listen, *docker)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Close, not Shutdown: an events stream never ends, and the agent
		// reconnects and replays what it missed.
		server.Close()
	}()
	log.Info("dockerproxy: serving", "listen", *listen, "docker", *docker)
	if err := server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dockerproxy: %w", err)
	}
	return nil
}
