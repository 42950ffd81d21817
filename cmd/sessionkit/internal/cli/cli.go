package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Exit statuses returned by Main.
const (
	exitOK    = 0
	exitError = 1 // the command failed while running
	exitUsage = 2 // bad command line or environment
)

// sys is what a command may use of its process: its output streams and
// environment. Both writers are safe for concurrent use.
type sys struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one subcommand.
type command struct {
	name    string
	summary string // one line, lower case, no final period
	run     func(ctx context.Context, s *sys, args []string) int
}

// commands is the command table. A new subcommand is one entry here.
func commands() []command {
	return []command{
		{"lab", "measure every session strategy's trade-offs under load and faults", runLab},
		{"serve", "run one node of the reference app", runServe},
		{"balance", "run the sticky-session load balancer in front of serve nodes", runBalance},
		{"keys", "create and rotate key-ring files for the token strategy", runKeys},
		{"help", "show help for sessionkit or one of its commands", runHelp},
	}
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// Main runs the sessionkit command with args (without the program name)
// and returns its exit status: 0 on success, 1 when the command failed
// while running, 2 for a bad command line or environment. ctx ends
// long-running commands (serve shuts down gracefully when it is done).
// Output goes to stdout and stderr, which Main serializes, so a command's
// goroutines may share them; getenv reads the environment (nil: empty).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	s := &sys{stdout: &lockedWriter{w: stdout}, stderr: &lockedWriter{w: stderr}, getenv: getenv}
	if len(args) == 0 {
		printUsage(s.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printUsage(s.stdout)
		return exitOK
	}
	cmd, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(s.stderr, "sessionkit: unknown command %q (run 'sessionkit --help')\n", args[0])
		return exitUsage
	}
	return cmd.run(ctx, s, args[1:])
}

func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`sessionkit runs and compares the session strategies of the sessionkit library.

Usage:
  sessionkit <command> [flags]

Commands:
`)
	cmds := commands()
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name, c.summary)
	}
	b.WriteString(`
Run 'sessionkit <command> --help' for a command's flags. Every flag can also
be set by an environment variable, SESSIONKIT_<FLAG>.
`)
	io.WriteString(w, b.String()) //nolint:errcheck // nowhere to report it
}

// runHelp is "sessionkit help [command]".
func runHelp(ctx context.Context, s *sys, args []string) int {
	switch len(args) {
	case 0:
		printUsage(s.stdout)
		return exitOK
	case 1:
		cmd, ok := lookup(args[0])
		if !ok {
			fmt.Fprintf(s.stderr, "sessionkit help: unknown command %q (run 'sessionkit --help')\n", args[0])
			return exitUsage
		}
		if cmd.name == "help" {
			printUsage(s.stdout)
			return exitOK
		}
		return cmd.run(ctx, s, []string{"--help"})
	default:
		fmt.Fprintln(s.stderr, "sessionkit help: want at most one command name (run 'sessionkit --help')")
		return exitUsage
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
