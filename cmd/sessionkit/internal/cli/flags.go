package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// flagSet is a command's flags. Every flag also reads an environment
// variable (see envName) as its default; a flag given on the command line
// wins.
type flagSet struct {
	cmd     string // the command's name, for messages
	args    string // the arguments after the flags, for --help ("FILE"), or ""
	nargs   int    // how many arguments after the flags the command takes
	rest    []string
	fs      *flag.FlagSet
	order   []string        // flag names, in definition order, for --help
	fromEnv map[string]bool // flags whose value came from the environment
	fromCLI map[string]bool // flags given on the command line
}

func newFlagSet(cmd string) *flagSet {
	fs := flag.NewFlagSet("sessionkit "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by parse, in one line
	fs.Usage = func() {}
	return &flagSet{cmd: cmd, fs: fs, fromEnv: map[string]bool{}, fromCLI: map[string]bool{}}
}

// envName is the environment variable of a flag: SESSIONKIT_ and the name
// in upper case, with dashes as underscores.
func envName(flagName string) string {
	return "SESSIONKIT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// In the usage strings below, a `quoted` word names the flag's argument in
// --help (see flag.UnquoteUsage).

func (f *flagSet) String(p *string, name, def, usage string) {
	f.fs.StringVar(p, name, def, usage)
	f.order = append(f.order, name)
}

func (f *flagSet) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	f.fs.DurationVar(p, name, def, usage)
	f.order = append(f.order, name)
}

func (f *flagSet) Int(p *int, name string, def int, usage string) {
	f.fs.IntVar(p, name, def, usage)
	f.order = append(f.order, name)
}

func (f *flagSet) Bool(p *bool, name string, def bool, usage string) {
	f.fs.BoolVar(p, name, def, usage)
	f.order = append(f.order, name)
}

func (f *flagSet) Float64(p *float64, name string, def float64, usage string) {
	f.fs.Float64Var(p, name, def, usage)
	f.order = append(f.order, name)
}

// Var defines a flag of any flag.Value, such as one that may be repeated.
func (f *flagSet) Var(v flag.Value, name, usage string) {
	f.fs.Var(v, name, usage)
	f.order = append(f.order, name)
}

// errf prints one error line for the command and returns exitUsage.
func (f *flagSet) errf(s *sys, format string, args ...any) int {
	fmt.Fprintf(s.stderr, "sessionkit %s: %s\n", f.cmd, fmt.Sprintf(format, args...))
	return exitUsage
}

// parse reads args, then the environment variables of the flags args did
// not set. It returns ok = false when the
// command must stop, with the exit status: 0 after --help (printed to
// stdout with about as the description), 2 after a bad flag, environment
// variable or argument (one line on stderr).
func (f *flagSet) parse(s *sys, args []string, about string) (code int, ok bool) {
	err := f.fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.printHelp(s.stdout, about)
		return exitOK, false
	case err != nil:
		return f.errf(s, "%v (see 'sessionkit %s --help')", err, f.cmd), false
	case f.fs.NArg() > f.nargs:
		return f.errf(s, "unexpected argument %q (see 'sessionkit %s --help')", f.fs.Arg(f.nargs), f.cmd), false
	case f.fs.NArg() < f.nargs:
		return f.errf(s, "missing %s (see 'sessionkit %s --help')", f.args, f.cmd), false
	}
	f.rest = f.fs.Args()
	f.fs.Visit(func(fl *flag.Flag) { f.fromCLI[fl.Name] = true })
	for _, name := range f.order {
		env := envName(name)
		v := s.getenv(env)
		if v == "" || f.fromCLI[name] {
			continue
		}
		if err := f.fs.Set(name, v); err != nil {
			return f.errf(s, "invalid %s %q: %s", env, v, hint(f.fs.Lookup(name), err)), false
		}
		f.fromEnv[name] = true
	}
	return exitOK, true
}

// source names where a flag's value came from, for error messages:
// "--name" or its environment variable.
func (f *flagSet) source(name string) string {
	if f.fromEnv[name] {
		return envName(name)
	}
	return "--" + name
}

// invalid reports a bad value of a flag, naming its source, and returns
// exitUsage.
func (f *flagSet) invalid(s *sys, name, value, why string) int {
	return f.errf(s, "invalid %s %q: %s", f.source(name), value, why)
}

// hint explains what a flag accepts, for a value that did not parse.
func hint(fl *flag.Flag, err error) string {
	if g, ok := fl.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case time.Duration:
			return "want a duration such as 90s, 30m or 12h"
		case int, int64:
			return "want an integer"
		case float64:
			return "want a number"
		case bool:
			return "want true or false"
		}
	}
	return err.Error()
}

// printHelp prints the command's usage and flags, with their defaults and
// environment variables.
func (f *flagSet) printHelp(w io.Writer, about string) {
	var b strings.Builder
	args := ""
	if f.args != "" {
		args = " " + f.args
	}
	fmt.Fprintf(&b, "Usage: sessionkit %s [flags]%s\n\n%s\n\nFlags (each also read from the environment variable shown; the command line wins):\n", f.cmd, args, strings.TrimSpace(about))
	for _, name := range f.order {
		fl := f.fs.Lookup(name)
		arg, usage := flag.UnquoteUsage(fl)
		if _, isBool := fl.Value.(interface{ IsBoolFlag() bool }); isBool {
			arg = ""
		}
		fmt.Fprintf(&b, "  --%s", name)
		if arg != "" {
			fmt.Fprintf(&b, " %s", strings.ToUpper(arg))
		}
		fmt.Fprintf(&b, "\n        %s\n        (default %s; env %s)\n", usage, defValue(fl), envName(name))
	}
	io.WriteString(w, b.String()) //nolint:errcheck // nowhere to report it
}

// defValue is a flag's default as --help shows it: durations without
// their zero minutes and seconds (30m, not 30m0s).
func defValue(fl *flag.Flag) string {
	if fl.DefValue == "" {
		return "none"
	}
	if g, ok := fl.Value.(flag.Getter); ok {
		if _, isDuration := g.Get().(time.Duration); isDuration {
			v := fl.DefValue
			if strings.HasSuffix(v, "m0s") {
				v = strings.TrimSuffix(v, "0s")
			}
			if strings.HasSuffix(v, "h0m") {
				v = strings.TrimSuffix(v, "0m")
			}
			return v
		}
	}
	return fl.DefValue
}
