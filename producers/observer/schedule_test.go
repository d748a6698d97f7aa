package observer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/producers/observer"
)

// starts records when each target's polls started.
type starts struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (s *starts) add(target string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = make(map[string][]time.Time)
	}
	s.at[target] = append(s.at[target], t)
}

func (s *starts) get(target string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.at[target]...)
}

// runFor runs o in a goroutine of the bubble for d, then stops it and
// waits for Run to return.
func runFor(t *testing.T, o *observer.Observer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	time.Sleep(d) // fake time inside the bubble
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func newObserver(t *testing.T, cfg observer.Config, p observer.Poller, reg prometheus.Registerer) *observer.Observer {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "volume"
	}
	if cfg.Node == "" {
		cfg.Node = "n0"
	}
	o, err := observer.New(cfg, observer.Static{Node: cfg.Node}, p, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// A poll that takes 80 % of the interval does not stretch the period: the
// polls of each target start exactly one interval apart, at the target's
// phase, and the targets' phases differ.
func TestScheduleDoesNotDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		targets := []string{"vol-a", "vol-b", "vol-c", "vol-d"}
		var s starts
		o := newObserver(t, observer.Config{Targets: targets, Interval: interval},
			observer.PollerFunc(func(ctx context.Context, p observer.Poll) error {
				s.add(p.Target, time.Now())
				if !time.Now().Equal(p.Scheduled) {
					return fmt.Errorf("started at %s, scheduled %s", time.Now(), p.Scheduled)
				}
				time.Sleep(interval * 8 / 10)
				return nil
			}), nil)
		runFor(t, o, 20*interval+interval/2)

		phases := make(map[time.Duration]bool)
		for _, target := range targets {
			at := s.get(target)
			if len(at) < 19 {
				t.Fatalf("%s polled %d times in 20 intervals", target, len(at))
			}
			phase := observer.Phase("volume", target, interval)
			phases[phase] = true
			if got := time.Duration(at[0].UnixNano() % int64(interval)); got != phase {
				t.Errorf("%s first poll at offset %s, want its phase %s", target, got, phase)
			}
			for i := 1; i < len(at); i++ {
				if d := at[i].Sub(at[i-1]); d != interval {
					t.Fatalf("%s polls %d and %d start %s apart, want %s", target, i-1, i, d, interval)
				}
			}
		}
		if len(phases) != len(targets) {
			t.Errorf("%d distinct phases for %d targets", len(phases), len(targets))
		}
		for _, st := range o.Status() {
			if st.Status != observer.StatusOK || st.Failures != 0 {
				t.Errorf("status %+v", st)
			}
		}
	})
}

// A poll that ignores its deadline and hangs costs only its own target and
// one slot of MaxConcurrent: the others keep their schedule, the hanging one is recorded as timed out
// and then as overrun while it has not returned.
func TestHangingPollAffectsOnlyItsTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		release := make(chan struct{})
		var s starts
		reg := prometheus.NewRegistry()
		o := newObserver(t, observer.Config{Targets: []string{"hang", "ok-1", "ok-2"}, Interval: interval, Timeout: interval / 2, MaxConcurrent: 2},
			observer.PollerFunc(func(ctx context.Context, p observer.Poll) error {
				s.add(p.Target, time.Now())
				if p.Target == "hang" {
					<-release
				}
				return nil
			}), reg)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		time.Sleep(10*interval + interval/2)
		byTarget := make(map[string]observer.TargetStatus)
		for _, st := range o.Status() {
			byTarget[st.Target] = st
		}
		close(release)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		if n := len(s.get("hang")); n != 1 {
			t.Errorf("hanging target started %d polls, want 1", n)
		}
		for _, target := range []string{"ok-1", "ok-2"} {
			at := s.get(target)
			if len(at) < 10 {
				t.Errorf("%s polled %d times in 10 intervals beside a hanging poll", target, len(at))
			}
			for i := 1; i < len(at); i++ {
				if d := at[i].Sub(at[i-1]); d != interval {
					t.Errorf("%s polls %d apart", target, d)
				}
			}
			if st := byTarget[target]; st.Status != observer.StatusOK || st.Failures != 0 {
				t.Errorf("%s: %+v", target, st)
			}
		}
		h := byTarget["hang"]
		if h.Status != observer.StatusOverrun || h.Polls < 10 || h.Failures != h.Polls {
			t.Errorf("hanging target's status %+v, want overrun after a timeout, every tick a failure", h)
		}
		if got := testutil.ToFloat64(counter(t, reg, "timeout")); got != 1 {
			t.Errorf("%v timeouts counted, want 1", got)
		}
	})
}

func counter(t *testing.T, reg *prometheus.Registry, status string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "jetmetrics_observer_polls_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "status" && lp.GetValue() == status {
						ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
					}
				}
			}
		}
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// An error or a panic is recorded for its target and the next tick polls
// it again.
func TestErrorsAndPanicsAreRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		var calls atomic.Int64
		o := newObserver(t, observer.Config{Targets: []string{"boom", "fail"}, Interval: interval},
			observer.PollerFunc(func(ctx context.Context, p observer.Poll) error {
				calls.Add(1)
				if p.Target == "boom" {
					panic("backend exploded")
				}
				return errors.New("backend says no")
			}), nil)
		runFor(t, o, 5*interval+interval/2)
		want := map[string]string{"boom": observer.StatusPanic, "fail": observer.StatusError}
		for _, st := range o.Status() {
			if st.Status != want[st.Target] || st.Polls < 5 || st.Failures != st.Polls || st.Error == "" {
				t.Errorf("%+v, want status %s after 5 failed polls", st, want[st.Target])
			}
		}
		if calls.Load() < 10 {
			t.Errorf("%d calls in 5 intervals for 2 targets", calls.Load())
		}
	})
}

// No more than MaxConcurrent polls run at once, and polls that find no
// slot fail instead of piling up.
func TestConcurrencyIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		var targets []string
		for i := range 20 {
			targets = append(targets, fmt.Sprintf("t%02d", i))
		}
		var running, peak, calls atomic.Int64
		o := newObserver(t, observer.Config{Targets: targets, Interval: interval, MaxConcurrent: 3},
			observer.PollerFunc(func(ctx context.Context, p observer.Poll) error {
				calls.Add(1)
				n := running.Add(1)
				defer running.Add(-1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				time.Sleep(interval / 2)
				return nil
			}), nil)
		runFor(t, o, 5*interval)
		if p := peak.Load(); p != 3 {
			t.Errorf("peak of %d polls at once, want the bound 3", p)
		}
		// 3 slots of half an interval each over 4 intervals: slots are
		// freed and reused.
		if n := calls.Load(); n < 20 {
			t.Errorf("%d polls in 5 intervals with 3 slots, want at least 20", n)
		}
		// 20 polls of half an interval each need 10 slots: the overload
		// shows as polls that found no slot by their deadline.
		var failed uint64
		for _, st := range o.Status() {
			failed += st.Failures
		}
		if failed == 0 {
			t.Error("an overload of 3 slots recorded no failed poll")
		}
	})
}
