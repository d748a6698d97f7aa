package probes_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/jetmetrics/jetmetrics/pkg/probes"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	pp "github.com/jetmetrics/jetmetrics/producers/probes"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// elector grants every lease at one revision.
type elector struct{ rev uint64 }

func (e elector) Lease(string) (observer.Lease, bool) {
	return observer.Lease{Node: "n1", Revision: e.rev}, true
}

type proberFunc func(ctx context.Context) (time.Duration, error)

func (f proberFunc) Probe(ctx context.Context) (time.Duration, error) { return f(ctx) }

// natsAndJetStream starts a server, provisions JETMETRICS_OBS and returns
// a connection and its JetStream.
func natsAndJetStream(t *testing.T) (*nats.Conn, jetstream.JetStream) {
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
	return nc, js
}

func last(t *testing.T, js jetstream.JetStream, subject string) (streams.ProbeResult, error) {
	st, err := js.Stream(t.Context(), "JETMETRICS_OBS")
	if err != nil {
		return streams.ProbeResult{}, err
	}
	m, err := st.GetLastMsgForSubject(t.Context(), subject)
	if err != nil {
		return streams.ProbeResult{}, err
	}
	return streams.DecodeProbeResult(m.Data)
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// Through the observer runtime, real probes of a healthy HTTP server, a
// NATS micro service, a closed TCP port and a service that never answers
// each publish their result on their own subject, with the scheduled
// instant, node and lease revision; failures carry their reason and no
// latency, and this node's checks are counted.
func TestPollerPublishesResults(t *testing.T) {
	nc, js := natsAndJetStream(t)
	svc, err := micro.AddService(nc, micro.Config{Name: "orders", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(web.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()

	reg := prometheus.NewRegistry()
	p, err := pp.New(pp.Config{Node: "n1", Probers: map[string]pp.Prober{
		"web/home": must[*probes.HTTP](t)(probes.NewHTTP(probes.HTTPConfig{URL: web.URL})),
		"orders":   must[*probes.NATS](t)(probes.NewNATS(probes.NATSConfig{Conn: nc, Subject: "$SRV.PING.orders"})),
		"closed":   must[*probes.TCP](t)(probes.NewTCP(closed)),
		"hang": proberFunc(func(ctx context.Context) (time.Duration, error) {
			<-ctx.Done()
			return time.Hour, ctx.Err() // a latency with an error is dropped
		}),
	}}, js, reg)
	if err != nil {
		t.Fatal(err)
	}
	const interval = 200 * time.Millisecond
	o, err := observer.New(observer.Config{Name: "probe", Node: "n1", Targets: p.Targets(), Interval: interval, Timeout: 100 * time.Millisecond},
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
	want := map[string]func(streams.ProbeResult) error{
		"web/home": okResult,
		"orders":   okResult,
		"closed":   failed(probes.ReasonRefused),
		"hang":     failed(probes.ReasonTimeout),
	}
	harness.Eventually(t, 10*time.Second, func() error {
		for service, check := range want {
			s, _ := subj.Observation(streams.ObsKindProbe, service)
			r, err := last(t, js, s)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			if r.Node != "n1" || r.LeaseRevision != 42 || r.Service != service ||
				r.ObservedAt.UnixNano()%int64(interval) != int64(observer.Phase("probe", service, interval)) {
				return fmt.Errorf("%s: %+v", service, r)
			}
			if err := check(r); err != nil {
				return fmt.Errorf("%s: %w", service, err)
			}
		}
		return nil
	})
	if s, _ := subj.Observation(streams.ObsKindProbe, "web/home"); s != "jetmetrics.obs.probe.web_2fhome" {
		t.Errorf("subject %s", s)
	}
	for _, c := range []struct{ service, result string }{
		{"web/home", "success"}, {"orders", "success"}, {"closed", "failure"}, {"hang", "failure"},
	} {
		if n := testutil.ToFloat64(must[prometheus.Counter](t)(counterVec(t, reg).GetMetricWithLabelValues(c.service, c.result))); n < 1 {
			t.Errorf("%v %s checks counted for %s", n, c.result, c.service)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// counterVec finds the poller's counter in reg by re-registering a twin.
func counterVec(t *testing.T, reg *prometheus.Registry) *prometheus.CounterVec {
	t.Helper()
	twin := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: pp.ProbesMetric,
		Help: "Service probes this node made, by service and result (success or failure).",
	}, []string{"service", "result"})
	var are prometheus.AlreadyRegisteredError
	if err := reg.Register(twin); !errors.As(err, &are) {
		t.Fatalf("register twin: %v", err)
	}
	return are.ExistingCollector.(*prometheus.CounterVec)
}

func okResult(r streams.ProbeResult) error {
	if !r.Success || r.Latency <= 0 || r.Reason != "" || r.Error != "" {
		return fmt.Errorf("want a success with a latency: %+v", r)
	}
	return nil
}

func failed(reason string) func(streams.ProbeResult) error {
	return func(r streams.ProbeResult) error {
		if r.Success || r.Latency != 0 || r.Reason != reason || r.Error == "" {
			return fmt.Errorf("want a failure (%s) without a latency: %+v", reason, r)
		}
		return nil
	}
}

// Probing the same service and instant twice, as a retry or a second
// leader would, leaves one result in the stream; the next instant adds
// one.
func TestOneResultPerInstant(t *testing.T) {
	_, js := natsAndJetStream(t)
	p, err := pp.New(pp.Config{Node: "n1", Probers: map[string]pp.Prober{
		"s": proberFunc(func(context.Context) (time.Duration, error) { return time.Millisecond, nil }),
	}}, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for _, rev := range []uint64{7, 9} {
		if err := p.Poll(t.Context(), observer.Poll{Target: "s", Scheduled: at, Lease: observer.Lease{Node: "n1", Revision: rev}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Poll(t.Context(), observer.Poll{Target: "s", Scheduled: at.Add(time.Second), Lease: observer.Lease{Node: "n1", Revision: 9}}); err != nil {
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
	// The first publish of an instant stands: the retry did not replace it.
	m, err := st.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := streams.DecodeProbeResult(m.Data)
	if err != nil || r.LeaseRevision != 7 || !r.ObservedAt.Equal(at) {
		t.Errorf("first result %+v, %v", r, err)
	}
}

// A service's own timeout cuts its probe short of the observer's; a
// prober's odd reason is published as "error"; the probe's error is
// returned after the result is published.
func TestPollTimeoutAndOddReason(t *testing.T) {
	_, js := natsAndJetStream(t)
	p, err := pp.New(pp.Config{Node: "n1",
		Probers: map[string]pp.Prober{
			"slow": proberFunc(func(ctx context.Context) (time.Duration, error) {
				<-ctx.Done()
				return 0, &probes.Error{Reason: probes.ReasonTimeout, Msg: "no answer", Err: ctx.Err()}
			}),
			"odd": proberFunc(func(context.Context) (time.Duration, error) {
				return 0, &probes.Error{Reason: "Not A Reason", Msg: "odd"}
			}),
		},
		Timeouts: map[string]time.Duration{"slow": 50 * time.Millisecond},
	}, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	start := time.Now()
	err = p.Poll(ctx, observer.Poll{Target: "slow", Scheduled: at, Lease: observer.Lease{Node: "n1", Revision: 3}})
	if probes.ReasonOf(err) != probes.ReasonTimeout || time.Since(start) > 5*time.Second {
		t.Errorf("slow: %v after %v", err, time.Since(start))
	}
	if err := p.Poll(ctx, observer.Poll{Target: "odd", Scheduled: at, Lease: observer.Lease{Node: "n1", Revision: 3}}); err == nil || err.Error() != "odd" {
		t.Errorf("odd: %v", err)
	}
	subj := streams.Subjects{}
	for service, reason := range map[string]string{"slow": probes.ReasonTimeout, "odd": probes.ReasonError} {
		s, _ := subj.Observation(streams.ObsKindProbe, service)
		r, err := last(t, js, s)
		if err != nil || r.Reason != reason || r.LeaseRevision != 3 {
			t.Errorf("%s: %+v, %v", service, r, err)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	ok := proberFunc(func(context.Context) (time.Duration, error) { return 0, nil })
	for _, tc := range []struct {
		cfg  pp.Config
		want string
	}{
		{pp.Config{Node: "a.b"}, `new probe poller: invalid subject token: node "a.b" has '.'`},
		{pp.Config{Node: "n1", Probers: map[string]pp.Prober{"x": nil}}, `new probe poller: service "x" has no prober`},
		{pp.Config{Node: "n1", Probers: map[string]pp.Prober{"": ok}}, `new probe poller: service "": invalid target name: empty`},
		{pp.Config{Node: "n1", Probers: map[string]pp.Prober{"x": ok}, Timeouts: map[string]time.Duration{"y": time.Second}}, `new probe poller: a timeout for service "y", which has no prober`},
		{pp.Config{Node: "n1", Probers: map[string]pp.Prober{"x": ok}, Timeouts: map[string]time.Duration{"x": 0}}, `new probe poller: service "x": timeout 0s is not positive`},
	} {
		_, err := pp.New(tc.cfg, nil, nil)
		if err == nil || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
			t.Errorf("%+v: %v, want %q…", tc.cfg, err, tc.want)
		}
	}
}

// SetProbers swaps the services probed: a kept service's counter goes on,
// a removed one is refused and its series leave /metrics, an added one is
// probed; an invalid set changes nothing.
func TestPollerSetProbers(t *testing.T) {
	_, js := natsAndJetStream(t)
	reg := prometheus.NewRegistry()
	ok := proberFunc(func(context.Context) (time.Duration, error) { return time.Millisecond, nil })
	p, err := pp.New(pp.Config{Node: "n1", Probers: map[string]pp.Prober{"kept": ok, "removed": ok}}, js, reg)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	poll := func(service string, n int) error {
		return p.Poll(t.Context(), observer.Poll{Target: service, Scheduled: at.Add(time.Duration(n) * time.Second), Lease: observer.Lease{Node: "n1", Revision: 1}})
	}
	for _, s := range []string{"kept", "removed"} {
		if err := poll(s, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SetProbers(map[string]pp.Prober{"kept": ok, "added": ok}, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"kept", "added"} {
		if err := poll(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := poll("removed", 1); err == nil {
		t.Error("the removed service was still probed")
	}
	if err := p.SetProbers(map[string]pp.Prober{"kept": nil}, nil); err == nil {
		t.Error("SetProbers took a nil prober")
	}
	if got, want := p.Targets(), []string{"added", "kept"}; !slices.Equal(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	got := map[string]float64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" {
					got[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	if want := map[string]float64{"kept": 2, "added": 1}; !maps.Equal(got, want) {
		t.Errorf("checks counted by service %v, want %v (kept goes on, removed is gone)", got, want)
	}
}
