package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// The hidden "docs" command renders reference documentation from the
// code itself, so that docs/configuration.md cannot drift from it:
//
//	jetmetrics docs flags                               print the section
//	jetmetrics docs flags --update docs/configuration.md  rewrite it in place
//
// (go tool task docs runs the second.)

// Markers of the generated section in docs/configuration.md.
const (
	flagsBegin = "<!-- flags:begin -->"
	flagsEnd   = "<!-- flags:end -->"
)

// docsUpdateHint is what to run when the committed doc is stale.
const docsUpdateHint = "go run ./cmd/jetmetrics docs flags --update docs/configuration.md (or: go tool task docs)"

// documentedCommands are the commands whose flags are documented, each
// run with -h and a flagSetRecorder to capture its flag set. A command
// that parses its flags with parseFlags gets here with one line.
var documentedCommands = []struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}{
	{"node", runNode},
	{"publish", runPublish},
	{"status", runStatus},
	{"top", runTop},
	{"dlq ls", dlqCommand("ls")},
	{"dlq show", dlqCommand("show")},
	{"dlq replay", dlqCommand("replay")},
}

// envOnly are the variables read without a flag twin: secrets, which a
// flag would put on the command line for every user of the machine to
// read. TestDocsEnvOnlyComplete fails when the code reads one not here.
var envOnly = []struct{ name, usage string }{
	{redisPasswordEnv, "password of `--redis.url`'s user; instead of `--redis.password-file` or a password in the URL, never with either"},
	{natsPasswordEnv, "password of `--nats.user` for `--nats.url`; instead of `--nats.password-file`"},
	{natsClusterPasswordEnv, "route password of `--nats.cluster.user`; instead of `--nats.cluster.password-file`"},
	{webPasswordEnv, "password of `--web.username` for `jetmetrics status` and `top`; instead of `--web.password-file`, never with it"},
}

// machineDefaults are the flags whose default depends on the machine the
// docs are generated on: the doc says where it comes from instead.
var machineDefaults = map[string]string{
	"node.name": "the host name (characters outside `[A-Za-z0-9_-]` as `-`)",
}

// flagSetRecorder is a writer that parseFlags recognises when it is given
// -h: it records the command's flag set instead of printing the help.
type flagSetRecorder struct {
	io.Writer
	fs *flag.FlagSet
}

func runDocs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "flags" {
		return usageError{"usage: jetmetrics docs flags [--update FILE]"}
	}
	fs := flag.NewFlagSet("docs flags", flag.ContinueOnError)
	update := fs.String("update", "", "rewrite the section between "+flagsBegin+" and "+flagsEnd+" of this file")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	section, err := renderFlagsDoc(ctx)
	if err != nil {
		return err
	}
	if *update == "" {
		_, err := io.WriteString(stdout, section)
		return err
	}
	old, err := os.ReadFile(*update)
	if err != nil {
		return fmt.Errorf("--update: %w", err)
	}
	doc, err := replaceSection(string(old), section)
	if err != nil {
		return fmt.Errorf("--update %s: %w", *update, err)
	}
	if doc == string(old) {
		fmt.Fprintf(stderr, "%s is up to date\n", *update)
		return nil
	}
	if err := os.WriteFile(*update, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("--update: %w", err)
	}
	fmt.Fprintf(stderr, "%s updated\n", *update)
	return nil
}

// commandFlags returns the flag set of a documented command, as its own
// code defines it.
func commandFlags(ctx context.Context, name string) (*flag.FlagSet, error) {
	for _, c := range documentedCommands {
		if c.name != name {
			continue
		}
		rec := &flagSetRecorder{Writer: io.Discard}
		if err := c.run(ctx, []string{"-h"}, rec, io.Discard); err != nil {
			return nil, fmt.Errorf("jetmetrics %s -h: %w", name, err)
		}
		if rec.fs == nil {
			return nil, fmt.Errorf("jetmetrics %s -h did not reach parseFlags", name)
		}
		return rec.fs, nil
	}
	return nil, fmt.Errorf("no documented command %q", name)
}

// renderFlagsDoc renders the generated section: one table per command of
// its flags, their variables, defaults and help, then the variables
// without a flag. It ends with a newline and holds no markers.
func renderFlagsDoc(ctx context.Context) (string, error) {
	var b bytes.Buffer
	b.WriteString("<!-- Generated from the code by go tool task docs; do not edit by hand. -->\n")
	for _, c := range documentedCommands {
		fs, err := commandFlags(ctx, c.name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n### `jetmetrics %s`\n\n", c.name)
		b.WriteString("| flag | environment variable | default | meaning |\n|---|---|---|---|\n")
		fs.VisitAll(func(f *flag.Flag) {
			env := "command line only"
			if e := envTwin(f); e != "" {
				env = "`" + e + "`"
			}
			fmt.Fprintf(&b, "| `--%s` | %s | %s | %s |\n", f.Name, env, flagDefault(f), cell(f.Usage))
		})
	}
	b.WriteString("\n### Variables without a flag\n\n")
	b.WriteString("Secrets only: a flag's value is on the command line, which every user of the machine can read.\n\n")
	b.WriteString("| environment variable | meaning |\n|---|---|\n")
	for _, e := range envOnly {
		fmt.Fprintf(&b, "| `%s` | %s |\n", e.name, cell(e.usage))
	}
	return b.String(), nil
}

// flagDefault is a flag's default as a table cell.
func flagDefault(f *flag.Flag) string {
	if d, ok := machineDefaults[f.Name]; ok {
		return d
	}
	def := f.DefValue
	if g, ok := f.Value.(flag.Getter); ok {
		if d, ok := g.Get().(time.Duration); ok {
			def = shortDuration(d)
		}
	}
	if def == "" {
		return "(none)"
	}
	return "`" + def + "`"
}

// shortDuration is d without the zero minutes and seconds Duration.String
// writes: 24h, not 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// replaceSection puts section between the markers of doc.
func replaceSection(doc, section string) (string, error) {
	before, rest, ok := strings.Cut(doc, flagsBegin+"\n")
	if !ok {
		return "", fmt.Errorf("no line %q: add it and %q where the flags go", flagsBegin, flagsEnd)
	}
	_, after, ok := strings.Cut(rest, flagsEnd)
	if !ok {
		return "", fmt.Errorf("no %q after %q", flagsEnd, flagsBegin)
	}
	return before + flagsBegin + "\n" + section + flagsEnd + after, nil
}

// currentSection is what lies between the markers of doc.
func currentSection(doc string) (string, error) {
	_, rest, ok := strings.Cut(doc, flagsBegin+"\n")
	if !ok {
		return "", fmt.Errorf("no line %q", flagsBegin)
	}
	section, _, ok := strings.Cut(rest, flagsEnd)
	if !ok {
		return "", fmt.Errorf("no %q after %q", flagsEnd, flagsBegin)
	}
	return section, nil
}
