package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/berth-lb/berth/agent/api"
)

// exitDelayEnded is the exit code of `berth drain --wait` when the
// deregistration delay ended before every node's requests finished.
const exitDelayEnded = 3

// exitError carries an exit code other than 1 to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

const drainUsage = "berth drain TARGET|CONTAINER [--wait] [--undo] [--admin ADDR] [--token-file FILE] [--output table|json] [--timeout DURATION]"

// runDrain implements `berth drain`: stop sending new requests to a target (or
// every target of a container) on every node; with --wait, until no node has
// a request in flight to it, or its deregistration delay ends.
func runDrain(args []string, stdout, _ io.Writer) error {
	flags, options := newAdminFlagSet("drain", drainUsage, stdout)
	wait := flags.Bool("wait", false, "wait until no node has a request in flight to the target (exit 0) or its deregistration delay ends (exit 3)")
	undo := flags.Bool("undo", false, "end a drain started with berth drain: the target serves again")
	ref, rest := splitRef(args)
	if help, err := parseAdminFlags(flags, options, rest); help || err != nil {
		return err
	}
	if ref == "" {
		return fmt.Errorf("name the target to drain: a target ID (berth targets), or a container ID or name; usage: %s", drainUsage)
	}
	client, err := newAdminClient(options)
	if err != nil {
		return err
	}
	if *undo {
		if _, err := client.do(http.MethodDelete, "/api/v1/drains/"+url.PathEscape(ref), nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s serves again\n", ref)
		return nil
	}
	body, err := client.do(http.MethodPost, "/api/v1/drains", api.DrainRequest{Target: ref})
	if err != nil {
		return err
	}
	var drains []api.Drain
	if err := client.decode("/api/v1/drains", body, &drains); err != nil {
		return err
	}
	if !*wait {
		if options.output == "json" {
			_, err := stdout.Write(body)
			return err
		}
		return writeDrains(stdout, drains)
	}
	ids := make([]string, len(drains))
	for i, d := range drains {
		ids[i] = d.Target
	}
	final, err := waitDrained(client, ids, func(ds []api.Drain) {
		if options.output == "table" {
			for _, d := range ds {
				fmt.Fprintf(stdout, "%s  %d in flight, %d/%d nodes reported\n", d.Target, d.InFlight, d.Reported, d.Nodes)
			}
		}
	})
	if err != nil {
		return err
	}
	if options.output == "json" {
		if err := json.NewEncoder(stdout).Encode(final); err != nil {
			return err
		}
	} else if err := writeDrains(stdout, final); err != nil {
		return err
	}
	for _, d := range final {
		if d.Outcome == "delay_ended" {
			return &exitError{exitDelayEnded, fmt.Errorf("the deregistration delay of %s ended with %d request(s) still in flight", d.Target, d.InFlight)}
		}
	}
	return nil
}

// splitRef takes the first argument that is not a flag as the reference, so
// flags may come before or after it.
func splitRef(args []string) (ref string, rest []string) {
	for i, a := range args {
		if len(a) > 0 && a[0] != '-' && (i == 0 || !flagTakesValue(args[i-1])) {
			return a, append(slices.Clone(args[:i]), args[i+1:]...)
		}
	}
	return "", args
}

func flagTakesValue(flag string) bool {
	switch flag {
	case "--admin", "--token-file", "--output", "-o", "--timeout", "-f", "--file", "-p", "--project", "--max-surge", "--scale":
		return true
	}
	return false
}

// drainPoll is how often a waiting command asks the agent for progress.
const drainPoll = 200 * time.Millisecond

// waitDrained polls the agent until every drain of ids is done, calling
// progress after each poll, and returns the final drains.
func waitDrained(client *adminClient, ids []string, progress func([]api.Drain)) ([]api.Drain, error) {
	for {
		body, err := client.get("/api/v1/drains", nil)
		if err != nil {
			return nil, err
		}
		var all []api.Drain
		if err := client.decode("/api/v1/drains", body, &all); err != nil {
			return nil, err
		}
		var mine []api.Drain
		done := true
		for _, d := range all {
			if slices.Contains(ids, d.Target) {
				mine = append(mine, d)
				done = done && d.Done
			}
		}
		if len(mine) < len(ids) {
			// A drained target whose container is gone is no longer listed: it is done.
			for _, id := range ids {
				if !slices.ContainsFunc(mine, func(d api.Drain) bool { return d.Target == id }) {
					mine = append(mine, api.Drain{Target: id, Done: true, Outcome: "drained"})
				}
			}
		}
		if progress != nil {
			progress(mine)
		}
		if done {
			return mine, nil
		}
		time.Sleep(drainPoll)
	}
}

func writeDrains(w io.Writer, drains []api.Drain) error {
	if len(drains) == 0 {
		_, err := fmt.Fprintln(w, "no drain")
		return err
	}
	table := newTable(w)
	fmt.Fprintln(table, "TARGET\tCONTAINER\tIN-FLIGHT\tNODES\tDEADLINE\tDONE")
	for _, d := range drains {
		done := "no"
		if d.Done {
			done = d.Outcome
		}
		deadline := "-"
		if !d.Deadline.IsZero() {
			deadline = d.Deadline.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(table, "%s\t%s\t%d\t%d/%d\t%s\t%s\n", d.Target, orDash(d.Container), d.InFlight, d.Reported, d.Nodes, deadline, done)
	}
	return table.Flush()
}
