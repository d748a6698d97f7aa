package node

import (
	"bytes"
	"io"
	"log"

	"github.com/rs/zerolog"
)

// LogWriter is an io.Writer that turns each write, one line of a standard
// library logger, into an event of l at lvl, so what net/http or the log
// package print lands in the node's one log stream. Give the standard
// logger no flags: zerolog adds the time.
func LogWriter(l zerolog.Logger, lvl zerolog.Level) io.Writer {
	return logWriter{l: l, lvl: lvl}
}

type logWriter struct {
	l   zerolog.Logger
	lvl zerolog.Level
}

func (w logWriter) Write(p []byte) (int, error) {
	w.l.WithLevel(w.lvl).Msg(string(bytes.TrimRight(p, "\r\n")))
	return len(p), nil
}

// stdLogger is a standard library logger writing to l at lvl.
func stdLogger(l zerolog.Logger, lvl zerolog.Level) *log.Logger {
	return log.New(LogWriter(l, lvl), "", 0)
}
