package volumes_test

import (
	"context"
	"errors"
	"fmt"
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
