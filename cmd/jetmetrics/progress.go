package main

import (
	"fmt"
	"io"
	"time"
)

// progress writes "verb n/total" to a terminal (isTerminal, node_cmd.go), rewritten in place with
// \r at most every 100 ms; to anything else it writes nothing.
type progress struct {
	w     io.Writer // nil: not a terminal
	verb  string
	total int
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, verb string, total int) *progress {
	p := &progress{verb: verb, total: total}
	if isTerminal(w) {
		p.w = w
	}
	return p
}

// set shows n done.
func (p *progress) set(n int) {
	if p.w == nil || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.shown = true
	fmt.Fprintf(p.w, "\r%s %d/%d", p.verb, n, max(n, p.total))
}

// done clears the progress line, if one was shown.
func (p *progress) done() {
	if p.w != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
