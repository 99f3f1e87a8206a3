package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/berth-lb/berth/agent"
	"github.com/berth-lb/berth/agent/config"
)

// runAgent implements `berth agent`: load the config, refuse a bad one, run
// until SIGINT or SIGTERM, then shut down gracefully.
func runAgent(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("berth agent", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML); reloaded when it changes. Reference: docs/config.md")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	config.BindFlags(fs)
	if help, err := parseFlagsOnly(fs, args); help || err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := config.Load(*configPath, fs)
	if problems, ok := config.AsErrors(err); ok {
		for _, p := range problems {
			fmt.Fprintf(stderr, "berth agent: %s: %s\n", orDefault(*configPath, "config"), p)
		}
		return fmt.Errorf("the config has %d problem(s); the agent does not start with a bad config (check it with 'berth config check FILE')", len(problems))
	} else if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return agent.Run(ctx, agent.Options{Config: cfg, ConfigPath: *configPath, Flags: fs, Version: version, Logger: log})
}

// parseFlagsOnly parses the flags of a command that takes no argument; help
// is true when --help printed the flags and the command has nothing to do.
func parseFlagsOnly(fs *pflag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q; %s takes flags only", fs.Arg(0), fs.Name())
	}
	return false, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
