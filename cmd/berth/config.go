package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/berth-lb/berth/agent/config"
)

const configUsage = "usage: berth config check FILE\n\nValidates FILE as the agent would load it (with BERTH_* env applied) and prints\nevery problem with its key path. Reference: docs/config.md\n"

// runConfig implements `berth config check FILE`.
func runConfig(args []string, stdout, _ io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		io.WriteString(stdout, configUsage)
		return nil
	}
	if len(args) != 2 || args[0] != "check" {
		return errors.New("want 'berth config check FILE'; run 'berth config --help'")
	}
	file := args[1]
	_, err := config.Load(file, nil)
	problems, invalid := config.AsErrors(err)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "%s: ok\n", file)
		return nil
	case !invalid:
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "%s: %s\n", file, p)
	}
	noun := "problems"
	if len(problems) == 1 {
		noun = "problem"
	}
	return fmt.Errorf("%s has %d %s; fix them and check again", file, len(problems), noun)
}
