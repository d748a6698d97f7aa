package fault_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// smallGroups keeps the groups the aggregator applies in one script small,
// so a test's load makes many applies to crash in or race for, each still
// of several messages.
const smallGroups = 8

// errCrash is what the fault hook returns when it kills an instance.
var errCrash = errors.New("crash")

// badLoad publishes from three producers at once: mixed batches, every
// 15th with one more entry the aggregator must reject (a negative counter
// delta), and every 40th followed by a message that is not JSON at all. It
// returns the dead letters the rejected messages must leave.
func badLoad(t *testing.T, r *rig, led *ledger) []expectedLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	const producers, batches = 3, 150
	var mu sync.Mutex
	var letters []expectedLetter
	var wg sync.WaitGroup
	for w := range producers {
		p := newPublisher(t, led, r.nc, nodeName, fmt.Sprintf("load-%d", w))
		wg.Go(func() {
			for i := range batches {
				us := mixed(p.id, i)
				bad := i%15 == 7
				if bad {
					us = append(us, rejected(counter("fault_requests_total", -1, "producer", p.id, "route", "x")))
				}
				a := p.ack(ctx, p.cut(us...))
				var l []expectedLetter
				if bad {
					l = append(l, expectedLetter{seq: a.Sequence, subject: p.subject, reason: streams.ReasonValue, entries: "3"})
				}
				if i%40 == 20 {
					a := p.raw(ctx, "", []byte(`{"v":1,"node":`), "")
					l = append(l, expectedLetter{seq: a.Sequence, subject: p.subject, reason: streams.ReasonUndecodable})
				}
				mu.Lock()
				letters = append(letters, l...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return letters
}

// checkRejections compares jetmetrics_rejected_total in the aggregate, and
// the dead-letter stream, with the letters the test expects.
func (r *rig) checkRejections(letters []expectedLetter) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := storedSamples(ctx, r.store)
	if err != nil {
		r.t.Fatal(err)
	}
	want := map[streams.Reason]float64{}
	for _, l := range letters {
		want[l.reason]++
	}
	for _, reason := range streams.Reasons {
		k := fmt.Sprintf("jetmetrics_rejected_total{reason=%q}", reason)
		if got[k] != want[reason] {
			r.t.Errorf("%s = %v, want %v", k, got[k], want[reason])
		}
	}
	if err := checkDeadLetters(ctx, r.js, letters); err != nil {
		r.t.Errorf("dead letters:\n%v", err)
	}
}

// crashLoop runs aggregator instances one after another. When its fault
// hook decides to crash at the chosen step, it ends the running instance
// there: the instance's context is cancelled and the hook's error ends the
// session, so nothing after the step happens, and a fresh instance (new
// registry, state loaded from Redis) takes over, as a restarted process
// would.
type crashLoop struct {
	step    aggregator.Step
	every   int64
	max     int64
	calls   atomic.Int64
	crashes atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
}

func (r *rig) crashing(step aggregator.Step, every, max int64) *crashLoop {
	ctx, cancel := context.WithCancel(context.Background())
	cl := &crashLoop{step: step, every: every, max: max, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for ctx.Err() == nil {
			ictx, kill := context.WithCancel(ctx)
			cfg := r.aggregatorConfig(aggregator.Config{MaxGroupMessages: smallGroups, Fault: func(s aggregator.Step, mark uint64) error {
				if s != cl.step || cl.calls.Add(1)%cl.every != 0 || cl.crashes.Load() >= cl.max {
					return nil
				}
				cl.crashes.Add(1)
				kill()
				return fmt.Errorf("%w at %s, seq %d", errCrash, s, mark)
			}})
			a, err := aggregator.New(cfg, r.js, aggregate.NewStore(r.rdb, "", nodeName), prometheus.NewRegistry())
			if err != nil {
				r.t.Error(err)
				kill()
				return
			}
			if err := a.Run(ictx); err != nil {
				r.t.Error(err)
			}
			kill()
		}
	}()
	r.t.Cleanup(cl.stop)
	return cl
}

func (cl *crashLoop) stop() {
	cl.cancel()
	<-cl.done
}

// TestAggregatorKilled (scenario 3): the aggregator killed right after
// decoding a group (dead letters already published, nothing written),
// right after the Redis script applied it (before the session records the
// new mark), and right after that commit. Each replacement resumes from
// the mark stored in Redis with the state: every batch counts once, and a
// replayed rejection is dead-lettered once.
func TestAggregatorKilled(t *testing.T) {
	for _, step := range []aggregator.Step{aggregator.StepDecoded, aggregator.StepApplied, aggregator.StepCommitted} {
		t.Run(string(step), func(t *testing.T) {
			r := newRig(t, rigConfig{})
			cl := r.crashing(step, 3, 40)
			led := newLedger()
			letters := badLoad(t, r, led)
			settle(t, r.js, r.rdb)
			cl.stop()
			t.Logf("killed %d times at %s in %d calls", cl.crashes.Load(), step, cl.calls.Load())
			if n := cl.crashes.Load(); n < 10 {
				t.Fatalf("only %d kills at %s: the load was too small to test anything", n, step)
			}
			r.checkStored(led)
			r.checkRejections(letters)
		})
	}
}

// rendezvous lets two aggregators start the same apply at the same
// moment: the first to arrive waits (bounded) for the second.
type rendezvous struct {
	mu      sync.Mutex
	waiting chan struct{}
	met     atomic.Int64
}

// meet returns when another caller has arrived too, or after wait.
func (rv *rendezvous) meet(wait time.Duration) {
	rv.mu.Lock()
	if ch := rv.waiting; ch != nil {
		rv.waiting = nil
		rv.mu.Unlock()
		rv.met.Add(1)
		close(ch)
		return
	}
	ch := make(chan struct{})
	rv.waiting = ch
	rv.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		rv.mu.Lock()
		if rv.waiting == ch {
			rv.waiting = nil
		}
		rv.mu.Unlock()
	}
}

// TestAggregatorsRacing (scenario 4): two aggregator instances on the same
// node and the same Redis, both reading every message. A rendezvous at the
// decoded step makes them start their applies together, so they race for
// the same stream positions again and again: the compare-and-set on the
// stream mark lets one win each time, the other resumes from the winner's
// mark, and every batch counts once.
func TestAggregatorsRacing(t *testing.T) {
	r := newRig(t, rigConfig{})
	rv := &rendezvous{}
	hook := func(step aggregator.Step, _ uint64) error {
		if step == aggregator.StepDecoded {
			rv.meet(100 * time.Millisecond)
		}
		return nil
	}
	a := r.start(aggregator.Config{MaxGroupMessages: smallGroups, Fault: hook})
	b := r.start(aggregator.Config{MaxGroupMessages: smallGroups, Fault: hook})
	led := newLedger()
	letters := badLoad(t, r, led)
	settle(t, r.js, r.rdb)
	conflicts := a.counterValue("jetmetrics_aggregator_resumes_total") + b.counterValue("jetmetrics_aggregator_resumes_total")
	t.Logf("met %d times; applies %v and %v; conflicts %v", rv.met.Load(),
		a.counterValue("jetmetrics_aggregator_applies_total"), b.counterValue("jetmetrics_aggregator_applies_total"), conflicts)
	if rv.met.Load() < 10 || conflicts < 10 {
		t.Fatalf("the instances met %d times and conflicted %v times: they did not race", rv.met.Load(), conflicts)
	}
	r.checkStored(led)
	r.checkRejections(letters)
}
