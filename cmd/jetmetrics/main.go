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
  publish   publish one counter, gauge or histogram value to a node and
            wait for its acknowledgement
  status    the cluster at a glance from one node's HTTP API
  top       a live view of a node's busiest series by rate
  dlq       dead letters: ls, show, and replay the ones now valid
  version   print the version

Run "jetmetrics <command> -h" for a command's flags. Every flag has an
environment twin: --web.listen-address is JETMETRICS_WEB_LISTEN_ADDRESS.

exit codes: 0 success; 1 refused or failed (invalid metric, permission
denied, delta stream full, node not ready); 2 usage error; 3 timed out
or unreachable.
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
	case "publish":
		return runPublish(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "top":
		return runTop(ctx, args[1:], stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args[1:], stdout, stderr)
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

// codedError carries an exit code other than 1 or 2: publish's and
// status's 3 for a node or NATS not reached in time.
type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

// Exit codes: 0 success, 1 refused or failed, 2 usage, 3 timed out or
// unreachable (publish and status).
const exitUnreachable = 3

func exitCode(err error) int {
	if errors.As(err, new(usageError)) {
		return 2
	}
	var ce codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 1
}
