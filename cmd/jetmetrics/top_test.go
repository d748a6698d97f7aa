package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// In a pipe top prints one frame with no escape codes and exits 0: the
// series driven at known rates (per tick: 100, 50 observations, 10, 1)
// are listed busiest first, the node's own metrics left out, --limit
// rows at most.
func TestTopInAPipe(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	p, err := producers.New(producers.Config{Node: "n1", Name: "top", FlushInterval: 20 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	c, err := p.NewCounterVec(producers.Opts{Name: "top_work_total"}, "speed")
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.NewHistogramVec(producers.HistogramOpts{Name: "top_latency_seconds", Buckets: []float64{0.1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	hi, mid, lo, idle := c.MustWith("hi"), c.MustWith("mid"), c.MustWith("lo"), c.MustWith("idle")
	obs := h.MustWith()
	idle.Add(5) // present, never moving
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			hi.Add(100)
			for range 50 {
				obs.Observe(0.5)
			}
			mid.Add(10)
			lo.Add(1)
		}
	}()
	defer func() { close(stop); <-done }()
	harness.Eventually(t, 30*time.Second, func() error {
		s, err := scrapeRates(context.Background(), &webClient{base: rn.URL, http: http.DefaultClient}, false)
		if err != nil {
			return err
		}
		if s[`top_work_total{speed="lo"}`].value == 0 {
			return errors.New("no deltas applied yet")
		}
		return nil
	})

	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"top", "--web.url=" + rn.URL, "--interval=1s", "--limit=4"}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatalf("top: %v", err)
	}
	out := stdout.String()
	t.Logf("top:\n%s", out)
	if strings.ContainsRune(out, '\x1b') {
		t.Errorf("top in a pipe wrote escape codes: %q", out)
	}
	var order []string
	for _, l := range strings.Split(out, "\n") {
		for _, s := range []string{`top_work_total{speed="hi"}`, "top_latency_seconds", `top_work_total{speed="mid"}`, `top_work_total{speed="lo"}`, `speed="idle"`, "jetmetrics_", "go_"} {
			if strings.HasSuffix(strings.TrimSpace(l), s) {
				order = append(order, s)
			}
		}
	}
	want := []string{`top_work_total{speed="hi"}`, "top_latency_seconds", `top_work_total{speed="mid"}`, `top_work_total{speed="lo"}`}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("rows %q, want %q", order, want)
	}
	if !strings.HasPrefix(out, "jetmetrics top  "+rn.URL) || !strings.Contains(out, "RATE/S") {
		t.Errorf("frame lacks its header")
	}
}

// An unreachable node is exit 3.
func TestTopUnreachable(t *testing.T) {
	err := run(context.Background(), []string{"top", "--web.url=http://127.0.0.1:1", "--timeout=1s"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || exitCode(err) != 3 || !strings.Contains(err.Error(), "--web.url=http://127.0.0.1:1 not scraped") {
		t.Errorf("error %v (exit %d), want not scraped, exit 3", err, exitCode(err))
	}
}
