package main

import (
	"errors"
	"io"
)

func runAgent(args []string, stdout, stderr io.Writer) error { return errors.New("todo") }
