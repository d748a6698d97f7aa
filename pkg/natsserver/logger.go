package natsserver

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// logBridge forwards nats-server log lines to zerolog. The server reports
// startup failures such as a port in use only through Fatalf and then
// carries on half-started, so the bridge also keeps the first fatal line
// for Start to return.
type logBridge struct {
	log zerolog.Logger

	mu    sync.Mutex
	fatal error
}

var _ server.Logger = (*logBridge)(nil)

func (b *logBridge) Noticef(format string, v ...any) { b.logf(zerolog.InfoLevel, format, v) }
func (b *logBridge) Warnf(format string, v ...any)   { b.logf(zerolog.WarnLevel, format, v) }
func (b *logBridge) Errorf(format string, v ...any)  { b.logf(zerolog.ErrorLevel, format, v) }
func (b *logBridge) Debugf(format string, v ...any)  { b.logf(zerolog.DebugLevel, format, v) }
func (b *logBridge) Tracef(format string, v ...any)  { b.logf(zerolog.TraceLevel, format, v) }

// logf logs one server line. The blank lines that space out the server's
// start-up banner carry nothing in a structured log and are dropped.
func (b *logBridge) logf(lvl zerolog.Level, format string, v []any) {
	e := b.log.WithLevel(lvl)
	if e == nil {
		return
	}
	msg := fmt.Sprintf(format, v...)
	if strings.TrimSpace(msg) == "" {
		e.Discard()
		return
	}
	e.Msg(msg)
}

// Fatalf logs at error level and records the message instead of exiting
// the process, which is what the server's own logger would do.
func (b *logBridge) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	b.log.Error().Msg(msg)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fatal == nil {
		b.fatal = errors.New(msg)
	}
}

// fatalErr returns the first fatal message logged, if any.
func (b *logBridge) fatalErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fatal
}

// levelEnabled reports whether l would write an event at lvl, so the
// server does not format debug or trace lines nobody reads.
func levelEnabled(l zerolog.Logger, lvl zerolog.Level) bool {
	e := l.WithLevel(lvl)
	ok := e.Enabled()
	e.Discard()
	return ok
}
