// Package cli implements the sessionkit command's subcommands; the
// command's main package only calls Main.
//
// Every subcommand is one entry of a table (name, one-line summary, run
// function), parses its flags with a flag.FlagSet that also reads each flag
// from an environment variable (SESSIONKIT_<FLAG>, upper case, dashes as
// underscores; a flag on the command line wins; an empty variable counts
// as unset), answers --help on stdout
// with exit status 0, and reports a bad flag or value as exactly one line on
// stderr, starting with "sessionkit <command>: ", and exit status 2. A
// failure at run time (a port already in use) exits 1.
//
// Commands:
//
//	serve    run one node of the reference app (package internal/refapp) on
//	         any strategy of the registry (package internal/strategy)
//	balance  run the sticky-session load balancer (package balancer)
//	lab      measure the strategies side by side (package internal/lab)
//	keys     create, rotate and export token key rings (package token)
//	help     show help for sessionkit or one of its commands
package cli
