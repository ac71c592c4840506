//go:build seamless_crashtest

package main

import (
	"io"

	"github.com/seamless-linux/seamless/internal/parallel"
)

// Only in the binary that the tests build (-tags seamless_crashtest): a
// command that meets a bug, in the command's goroutine or in an engine
// worker, to prove how seamless reports one.
func init() {
	commands = append(commands, command{"crashtest", "(tests only) panic in the command or in a worker", runCrashtest})
}

func runCrashtest(args []string, stdout, stderr io.Writer) error {
	var m map[string]int
	if len(args) > 0 && args[0] == "worker" {
		return parallel.Each(4, func(i int) error {
			if i == 2 {
				m["x"] = i // a nil map: a bug
			}
			return nil
		})
	}
	m["x"] = 1
	return nil
}
