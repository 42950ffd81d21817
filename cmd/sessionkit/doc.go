// Command sessionkit runs the parts of the sessionkit library that are
// programs rather than packages. Run "sessionkit --help" for its commands
// and "sessionkit <command> --help" for their flags.
//
//	sessionkit serve [flags]   run one node of the reference app
//
// Every flag can also be set by an environment variable SESSIONKIT_<FLAG>
// (upper case, dashes as underscores), e.g. SESSIONKIT_ADDR for --addr; a
// flag on the command line wins. Exit status: 0 on success, 1 when a
// command fails while running, 2 for a bad command line or environment.
//
// The commands are implemented in package internal/cli.
package main
