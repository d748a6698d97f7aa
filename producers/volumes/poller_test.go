package volumes_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	pv "github.com/jetmetrics/jetmetrics/producers/volumes"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type backendFunc func(ctx context.Context) (volumes.Metric, error)

func (f backendFunc) PerformanceMetric(ctx context.Context) (volumes.Metric, error) { return f(ctx) }

// elector grants every lease at one revision.
type elector struct{ rev uint64 }

func (e elector) Lease(string) (observer.Lease, bool) {
	return observer.Lease{Node: "n1", Revision: e.rev}, true
}

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	s := harness.NATS(t)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.ProvisionObs(t.Context(), js, streams.ObsConfig{MemoryStorage: true}); err != nil {
		t.Fatal(err)
	}
	return js
}

func last(t *testing.T, js jetstream.JetStream, subject string) (streams.Observation, error) {
	st, err := js.Stream(t.Context(), "JETMETRICS_OBS")
	if err != nil {
		return streams.Observation{}, err
	}
	m, err := st.GetLastMsgForSubject(t.Context(), subject)
	if err != nil {
		return streams.Observation{}, err
	}
	return streams.DecodeObservation(m.Data)
}

var metric = volumes.Metric{IOPSRead: 10, IOPSWrite: 20, BytesReadPerSec: 4096, BytesWritePerSec: 8192, LatencyUsecRead: 300, LatencyUsecWrite: 700}

// Through the observer runtime: a good, a failing and a hanging backend
// each publish their results, with status, error, node, revision and the
// scheduled instant, and the failure of one does not stop the others.
func TestPollerPublishesResults(t *testing.T) {
	js := jetStream(t)
	reg := prometheus.NewRegistry()
	p, err := pv.New(pv.Config{Node: "n1", Backends: map[string]pv.Backend{
		"svm1/good": backendFunc(func(context.Context) (volumes.Metric, error) { return metric, nil }),
		"bad":       backendFunc(func(context.Context) (volumes.Metric, error) { return volumes.Metric{}, errors.New("array says 503") }),
		"hang": backendFunc(func(ctx context.Context) (volumes.Metric, error) {
			<-ctx.Done()
			return volumes.Metric{}, fmt.Errorf("get performance: %w", ctx.Err())
		}),
	}}, js, reg)
	if err != nil {
		t.Fatal(err)
	}
	o, err := observer.New(observer.Config{Name: "volume", Node: "n1", Targets: p.Targets(), Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond},
		elector{rev: 42}, p, harness.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	subj := streams.Subjects{}
	want := map[string]func(streams.Observation) error{
		"svm1/good": func(o streams.Observation) error {
			if o.Status != streams.ObsStatusOK || o.Metric.IOPSWrite != 20 || o.Metric.LatencyUsecWrite != 700 || o.Metric.ThroughputBytesRead != 4096 {
				return fmt.Errorf("good: %+v", o)
			}
			return nil
		},
		"bad": func(o streams.Observation) error {
			if o.Status != streams.ObsStatusError || o.Error != "array says 503" {
				return fmt.Errorf("bad: %+v", o)
			}
			return nil
		},
		"hang": func(o streams.Observation) error {
			if o.Status != streams.ObsStatusTimeout || !strings.Contains(o.Error, "deadline exceeded") || o.Duration < 90*time.Millisecond {
				return fmt.Errorf("hang: %+v", o)
			}
			return nil
		},
	}
	harness.Eventually(t, 10*time.Second, func() error {
		for volume, check := range want {
			s, _ := subj.Observation(streams.ObsKindVolume, volume)
			o, err := last(t, js, s)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			if o.Node != "n1" || o.LeaseRevision != 42 || o.Volume != volume || o.ObservedAt.UnixNano()%int64(200*time.Millisecond) != int64(observer.Phase("volume", volume, 200*time.Millisecond)) {
				return fmt.Errorf("%s: %+v", volume, o)
			}
			if err := check(o); err != nil {
				return err
			}
		}
		return nil
	})
	if n := counter(t, reg, "svm1/good", "success"); n < 1 {
		t.Errorf("%v successes counted for svm1/good", n)
	}
	if n := counter(t, reg, "bad", "failure"); n < 1 {
		t.Errorf("%v failures counted for bad", n)
	}
	if n, err := testutil.GatherAndCount(reg, "jetmetrics_volume_stats_observe_duration_seconds"); err != nil || n != 3 {
		t.Errorf("%d duration histograms, %v; want one per volume", n, err)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, volume, status string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "jetmetrics_volume_stats_observe_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["volume"] == volume && labels["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Publishing the same volume and instant twice, as a retry or a second
// leader would, leaves one result in the stream.
func TestOneResultPerInstant(t *testing.T) {
	js := jetStream(t)
	p, err := pv.New(pv.Config{Node: "n1", Backends: map[string]pv.Backend{
		"v": backendFunc(func(context.Context) (volumes.Metric, error) { return metric, nil }),
	}}, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for _, rev := range []uint64{7, 9} {
		if err := p.Poll(t.Context(), observer.Poll{Target: "v", Scheduled: at, Lease: observer.Lease{Node: "n1", Revision: rev}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Poll(t.Context(), observer.Poll{Target: "v", Scheduled: at.Add(time.Second), Lease: observer.Lease{Node: "n1", Revision: 9}}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), "JETMETRICS_OBS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("%d results for two instants, want 2", info.State.Msgs)
	}
}

// SetBackends replaces the volumes polled: a volume that stays goes on
// counting with its new backend, a removed one is refused without its
// old backend being called, an added one is polled and published; a
// set with a volume lacking a backend, or a name that maps to no subject
// token, changes nothing.
func TestPollerSetBackends(t *testing.T) {
	js := jetStream(t)
	reg := prometheus.NewRegistry()
	calls := map[string]*int{}
	counting := func(name string, iops float64) pv.Backend {
		n := new(int)
		calls[name] = n
		return backendFunc(func(context.Context) (volumes.Metric, error) {
			*n++
			return volumes.Metric{IOPSRead: iops}, nil
		})
	}
	p, err := pv.New(pv.Config{Node: "n1", Backends: map[string]pv.Backend{
		"kept":    counting("kept-old", 1),
		"removed": counting("removed", 2),
	}}, js, reg)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	poll := func(target string, n int) error {
		return p.Poll(t.Context(), observer.Poll{Target: target, Scheduled: at.Add(time.Duration(n) * time.Second), Lease: observer.Lease{Node: "n1", Revision: 1}})
	}
	for _, v := range []string{"kept", "removed"} {
		if err := poll(v, 0); err != nil {
			t.Fatal(err)
		}
	}

	if err := p.SetBackends(map[string]pv.Backend{"kept": counting("kept-new", 10), "svm1/added": counting("added", 3)}); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Targets(), []string{"kept", "svm1/added"}; !slices.Equal(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	for _, v := range []string{"kept", "svm1/added"} {
		if err := poll(v, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := poll("removed", 1); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("polling the removed volume: %v, want not configured", err)
	}
	if *calls["kept-old"] != 1 || *calls["kept-new"] != 1 || *calls["removed"] != 1 || *calls["added"] != 1 {
		t.Errorf("backend calls: kept old %d, kept new %d, removed %d, added %d; want 1 each",
			*calls["kept-old"], *calls["kept-new"], *calls["removed"], *calls["added"])
	}
	if n := counter(t, reg, "kept", "success"); n != 2 {
		t.Errorf("%v successes counted for kept, want 2: its counter goes on across SetBackends", n)
	}
	if n := counter(t, reg, "removed", "success"); n != 0 {
		t.Errorf("the removed volume's counter is still exposed (%v): its series must go with it", n)
	}
	subj := streams.Subjects{}
	for volume, iops := range map[string]float64{"kept": 10, "svm1/added": 3} {
		s, _ := subj.Observation(streams.ObsKindVolume, volume)
		o, err := last(t, js, s)
		if err != nil {
			t.Fatalf("%s: %v", volume, err)
		}
		if o.Volume != volume || o.Metric.IOPSRead != iops || !o.ObservedAt.Equal(at.Add(time.Second)) {
			t.Errorf("%s's last result %+v, want iops %v at %v", volume, o, iops, at.Add(time.Second))
		}
	}

	for name, bad := range map[string]map[string]pv.Backend{
		"nil backend": {"kept": nil},
		"empty name":  {"": counting("empty", 0)},
	} {
		if err := p.SetBackends(bad); err == nil {
			t.Errorf("%s: SetBackends took it", name)
		}
		if got, want := p.Targets(), []string{"kept", "svm1/added"}; !slices.Equal(got, want) {
			t.Errorf("%s: targets %v after a refused SetBackends, want %v", name, got, want)
		}
	}
}
