// Command berth is the one binary of berth: the agent (discovery, gossip and the
// balancer) and the commands that talk to a running agent through its admin API.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"agent", "run the agent: Docker discovery and the balancer", runAgent},
		{"status", "show the node, its listeners, groups, the fleet's nodes and skipped containers", runStatus},
		{"targets", "list every target with its state and counters", runTargets},
		{"drain", "drain a target or container fleet-wide; --wait until no node has a request in flight", runDrain},
		{"rollout", "replace a compose service's containers start-first, losing no request", runRollout},
		{"docker-proxy", "serve a read-only Docker API for the agent: list, inspect and events only", runDockerProxy},
		{"config", "config check FILE: validate a config file and print every error", runConfig},
		{"keygen", "print a new gossip key for cluster.secret-key-file", runKeygen},
		{"version", "print the version", runVersion},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run(args[1:], stdout, stderr); err != nil {
				fmt.Fprintf(stderr, "berth %s: %v\n", c.name, err)
				var exit *exitError
				if errors.As(err, &exit) {
					return exit.code
				}
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "berth: unknown command %q; run 'berth help' for the list\n", args[0])
	return 2
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("berth: a load balancer for fleets of plain Docker hosts\n\nusage: berth COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-13s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'berth COMMAND --help' for a command's flags. Reference: docs/cli.md\n")
	io.WriteString(w, b.String())
}

func runVersion(_ []string, stdout, _ io.Writer) error {
	fmt.Fprintf(stdout, "berth %s\n", version)
	return nil
}
