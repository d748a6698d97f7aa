// Command jetmetrics runs a jetmetrics node and its command-line verbs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.As(err, new(reportedError)) {
			fmt.Fprintln(os.Stderr, "jetmetrics:", err)
		}
		os.Exit(exitCode(err))
	}
}

const usage = `usage: jetmetrics <command> [flags]

commands:
  node      run a node: embedded or external NATS, managed or external Redis,
            the aggregator and the HTTP exposition server
  version   print the version

Run "jetmetrics <command> -h" for a command's flags. Every flag has an
environment twin: --web.listen-address is JETMETRICS_WEB_LISTEN_ADDRESS.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "node":
		return runNode(ctx, args[1:], stdout, stderr)
	case "docs": // hidden: renders docs/configuration.md's flag tables
		return runDocs(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "jetmetrics", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// reportedError is an error the command has logged already; main only
// sets the exit code from it.
type reportedError struct{ err error }

func (e reportedError) Error() string { return e.err.Error() }
func (e reportedError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}
