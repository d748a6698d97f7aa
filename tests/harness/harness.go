package harness

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// pollInterval paces Eventually.
const pollInterval = 10 * time.Millisecond

// Logger returns a logger that writes readable lines through t.Log, at
// debug level, so a failing test shows what the servers it started and
// the code under test were doing, to the millisecond.
func Logger(t testing.TB) zerolog.Logger {
	w := zerolog.ConsoleWriter{
		Out:     zerolog.NewTestWriter(t),
		NoColor: true,
		// The timestamp field's precision is the global
		// zerolog.TimeFieldFormat, seconds by default; stamp each line as
		// it is written, which is when it is logged, instead.
		FormatTimestamp: func(any) string { return time.Now().Format("15:04:05.000") },
	}
	return zerolog.New(w).Level(zerolog.DebugLevel)
}

// Eventually calls cond every few milliseconds until it returns nil, and
// fails the test with cond's last error if that takes longer than timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("condition not met after %s: %v", timeout, err)
		case <-tick.C:
		}
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
// Another process can take it before the caller binds it; prefer letting
// a server pick its own port where it can.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
