package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// envName is a flag's environment twin: JETMETRICS_ and the flag name in
// upper case with '.' and '-' as '_'.
func envName(flagName string) string {
	return "JETMETRICS_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(flagName))
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment twin. Errors are one line naming the flag.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if rec, ok := stdout.(*flagSetRecorder); ok {
				rec.fs = fs // jetmetrics docs: the flag set, not its help
				return err
			}
			fs.SetOutput(stdout)
			fmt.Fprintf(stdout, "usage: jetmetrics %s [flags]\n\nflags (each with a JETMETRICS_* environment twin):\n", fs.Name())
			fs.VisitAll(func(f *flag.Flag) {
				def := ""
				if f.DefValue != "" {
					def = fmt.Sprintf(" (default %q)", f.DefValue)
				}
				fmt.Fprintf(stdout, "  --%s  [%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
			})
			return err
		}
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
			msg = "unknown flag " + name + " (see -h)"
		}
		return usageError{msg}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (flags are --name=value)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		env := envName(f.Name)
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usageError{fmt.Sprintf("invalid value %q for %s (from --%s): %v", v, env, f.Name, serr)}
		}
	})
	return err
}

// flagError reports a flag whose value parsed but is not acceptable.
func flagError(name, value, why string) error {
	return usageError{fmt.Sprintf("invalid value %q for --%s: %s", value, name, why)}
}
