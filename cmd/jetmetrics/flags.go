package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// envName is a flag's environment twin: JETMETRICS_ and the flag name in
// upper case with '.' and '-' as '_'.
func envName(flagName string) string {
	return "JETMETRICS_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(flagName))
}

// cliOnly wraps the value of a flag that has no environment twin: one
// that selects what a command acts on (dlq replay --all, --reason), which a
// variable left in a shell must never choose.
type cliOnly struct{ flag.Value }

// IsBoolFlag keeps a wrapped boolean flag usable as --name.
func (c cliOnly) IsBoolFlag() bool {
	b, ok := c.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// commandLineOnly takes the environment twins of fs's flags names away.
func commandLineOnly(fs *flag.FlagSet, names ...string) {
	for _, name := range names {
		f := fs.Lookup(name)
		f.Value = cliOnly{f.Value}
	}
}

// envTwin is f's environment variable, or "" for a command-line-only flag.
func envTwin(f *flag.Flag) string {
	if _, ok := f.Value.(cliOnly); ok {
		return ""
	}
	return envName(f.Name)
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment twin. Errors are one line naming the flag.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	rest, err := parseCommand(fs, args, stdout, fmt.Sprintf("usage: jetmetrics %s [flags]\n", fs.Name()), false)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (flags are --name=value)", rest[0])}
	}
	return nil
}

// parseCommand is parseFlags for a command that takes arguments too:
// with positional true, flags may come before, between and after them and
// the arguments are returned in order ("--" ends the flags). header opens
// the -h text, before the flag list.
func parseCommand(fs *flag.FlagSet, args []string, stdout io.Writer, header string, positional bool) ([]string, error) {
	fs.SetOutput(io.Discard)
	var rest []string
	for {
		// A negative number is an argument (a gauge's value), not a flag.
		for positional && len(args) > 0 && isNegativeNumber(args[0]) {
			rest, args = append(rest, args[0]), args[1:]
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if rec, ok := stdout.(*flagSetRecorder); ok {
					rec.fs = fs // jetmetrics docs: the flag set, not its help
					return nil, err
				}
				fs.SetOutput(stdout)
				fmt.Fprintf(stdout, "%s\nflags (each with a JETMETRICS_* environment twin unless marked command line only):\n", header)
				fs.VisitAll(func(f *flag.Flag) {
					def := ""
					if f.DefValue != "" {
						def = fmt.Sprintf(" (default %q)", f.DefValue)
					}
					env := envTwin(f)
					if env == "" {
						env = "command line only"
					}
					fmt.Fprintf(stdout, "  --%s  [%s]\n      %s%s\n", f.Name, env, f.Usage, def)
				})
				return nil, err
			}
			msg := err.Error()
			if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
				msg = "unknown flag " + name + " (see -h)"
			}
			return nil, usageError{msg}
		}
		if !positional || fs.NArg() == 0 {
			rest = append(rest, fs.Args()...)
			break
		}
		// fs.Args follows "--" whole, or starts at the first argument.
		consumed := len(args) - fs.NArg()
		if consumed > 0 && args[consumed-1] == "--" {
			rest = append(rest, fs.Args()...)
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := envTwin(f)
		if err != nil || set[f.Name] || env == "" {
			return
		}
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usageError{fmt.Sprintf("invalid value %q for %s (from --%s): %v", v, env, f.Name, serr)}
		}
	})
	return rest, err
}

func isNegativeNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && strings.HasPrefix(s, "-")
}

// flagError reports a flag whose value parsed but is not acceptable.
func flagError(name, value, why string) error {
	return usageError{fmt.Sprintf("invalid value %q for --%s: %s", value, name, why)}
}
