// Command sessionkit runs the parts of the sessionkit library that are
// programs rather than packages. Run "sessionkit --help" for its commands
// and "sessionkit <command> --help" for their flags.
//
//	sessionkit serve [flags]                run one node of the reference app
//	sessionkit balance [flags]              run the sticky-session load balancer
//	sessionkit lab [flags]                  measure the strategies side by side
//	sessionkit keys new|rotate|export FILE  manage a token key ring
//
// Install it from a release with
//
//	go install github.com/sessionkit/sessionkit/cmd/sessionkit@latest
//
// (the command is a module of its own; docs/releasing.md).
//
// Every flag can also be set by an environment variable SESSIONKIT_<FLAG>
// (upper case, dashes as underscores), e.g. SESSIONKIT_ADDR for --addr; a
// flag on the command line wins. Exit status: 0 on success, 1 when a
// command fails while running, 2 for a bad command line or environment.
//
// The commands are implemented in package cmd/sessionkit/internal/cli.
package main
