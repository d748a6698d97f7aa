package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

const publishUsage = `usage: jetmetrics publish [flags] counter NAME VALUE [label=value ...]
       jetmetrics publish [flags] gauge NAME VALUE [label=value ...]
       jetmetrics publish [flags] histogram NAME VALUE [label=value ...] [--buckets=0.1,1,10]

Publishes one value as a producer of its own (a new producer id each run)
and exits 0 once JetStream has acknowledged it; the node counts it exactly
once. A counter adds VALUE (>= 0), a gauge sets the series to VALUE,
a histogram observes VALUE. Flags may also follow the arguments.

example:
  jetmetrics publish --nats.url=nats://127.0.0.1:4222 --node=node-a \
      counter deploys_total 1 service=billing env=prod

exit codes: 0 acknowledged; 1 refused (invalid name or label, credentials,
permission denied, delta stream full); 2 usage error; 3 not acknowledged
within --timeout (NATS unreachable, no stream).
`

func runPublish(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	url := fs.String("nats.url", "nats://127.0.0.1:4222", "NATS server URL(s), comma separated")
	cfg := producers.Config{}
	fs.StringVar(&cfg.Node, "node", "", "node whose aggregate receives the value (its --node.name)")
	fs.StringVar(&cfg.Name, "name", "cli", "producer name; with a producer credential, one of its owners")
	fs.StringVar(&cfg.Prefix, "streams.prefix", "", "subject prefix of the node's streams (default the node's default)")
	help := fs.String("help-text", "", "help text of the metric, kept by the aggregate if it is the first it sees")
	buckets := fs.String("buckets", "", "histogram bucket upper bounds, comma separated and ascending (default Prometheus' default buckets)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to retry until the value is acknowledged")
	var auth natsauth.ClientOptions
	fs.StringVar(&auth.CredsFile, "nats.creds", "", "JWT credentials file")
	fs.StringVar(&auth.NkeyFile, "nats.nkey", "", "nkey seed file")
	fs.StringVar(&auth.User, "nats.user", "", "user, with --nats.password-file (or JETMETRICS_NATS_PASSWORD)")
	fs.StringVar(&auth.PasswordFile, "nats.password-file", "", "file holding --nats.user's password")
	fs.StringVar(&auth.TokenFile, "nats.token-file", "", "file holding a token")
	fs.StringVar(&auth.TLSCAFile, "nats.tls.ca-file", "", "PEM CA certificates of the server's certificate")
	fs.StringVar(&auth.TLSCertFile, "nats.tls.cert-file", "", "PEM client certificate, with --nats.tls.key-file")
	fs.StringVar(&auth.TLSKeyFile, "nats.tls.key-file", "", "PEM private key of --nats.tls.cert-file")
	rest, err := parseCommand(fs, args, stdout, publishUsage, true)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	auth.Password = os.Getenv(natsPasswordEnv)
	m, err := parseMetricArgs(rest, *buckets)
	if err != nil {
		return err
	}
	switch {
	case cfg.Node == "":
		return flagError("node", "", "want the name of the node to publish to")
	case *timeout <= 0:
		return flagError("timeout", timeout.String(), "want a positive duration")
	case *url == "":
		return flagError("nats.url", "", "want a NATS URL such as nats://127.0.0.1:4222")
	}
	if err := cfg.Validate(); err != nil {
		return usageError{"--node, --name or --streams.prefix: " + err.Error()}
	}
	opts, err := auth.NATSOptions()
	if err != nil {
		return usageError{"NATS credentials (--nats.*): " + err.Error()}
	}
	cfg.FlushInterval = time.Hour // Flush publishes; no ticks
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return publishOne(ctx, *url, opts, cfg, m, *help, *timeout, stdout)
}

// metricArgs is the metric of publish's arguments.
type metricArgs struct {
	kind, name string
	value      float64
	labelNames []string
	labelVals  []string
	buckets    []float64
}

func parseMetricArgs(rest []string, buckets string) (metricArgs, error) {
	var m metricArgs
	if len(rest) < 3 {
		return m, usageError{"want KIND NAME VALUE [label=value ...], KIND counter, gauge or histogram (see -h)"}
	}
	m.kind, m.name = rest[0], rest[1]
	switch m.kind {
	case "counter", "gauge", "histogram":
	default:
		return m, usageError{fmt.Sprintf("unknown metric kind %q: want counter, gauge or histogram", m.kind)}
	}
	// Checked before connecting, so a mistake is refused at once; the SDK
	// checks the rest (label values, limits).
	switch {
	case !series.ValidMetricName(m.name):
		return m, fmt.Errorf("refused: metric name %q: want [a-zA-Z_:][a-zA-Z0-9_:]*", m.name)
	}
	if err := streams.CheckReservedName(m.name); err != nil {
		return m, fmt.Errorf("refused: %w", err)
	}
	v, err := strconv.ParseFloat(rest[2], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return m, usageError{fmt.Sprintf("value %q of %s: want a finite number", rest[2], m.name)}
	}
	if m.kind == "counter" && v < 0 {
		return m, usageError{fmt.Sprintf("value %q of counter %s: a counter only goes up, want >= 0", rest[2], m.name)}
	}
	m.value = v
	for _, kv := range rest[3:] {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return m, usageError{fmt.Sprintf("label %q: want name=value", kv)}
		}
		if !series.ValidLabelName(k) || series.Reserved(k) {
			return m, fmt.Errorf("refused: label name %q of %s: want [a-zA-Z_][a-zA-Z0-9_]*, not node, le, quantile nor starting with __", k, m.name)
		}
		if slices.Contains(m.labelNames, k) {
			return m, usageError{fmt.Sprintf("label %q given twice", k)}
		}
		m.labelNames = append(m.labelNames, k)
		m.labelVals = append(m.labelVals, val)
	}
	if buckets != "" {
		if m.kind != "histogram" {
			return m, usageError{"--buckets applies to a histogram only"}
		}
		for _, b := range strings.Split(buckets, ",") {
			f, err := strconv.ParseFloat(strings.TrimSpace(b), 64)
			if err != nil {
				return m, flagError("buckets", buckets, fmt.Sprintf("%q is not a number", b))
			}
			m.buckets = append(m.buckets, f)
		}
	}
	return m, nil
}

// publishOne connects, records m in a new producer and flushes it.
func publishOne(ctx context.Context, url string, opts []nats.Option, cfg producers.Config, m metricArgs, help string, timeout time.Duration, stdout io.Writer) error {
	denied := make(chan error, 1)
	opts = append(opts,
		nats.Name("jetmetrics publish"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case denied <- err:
				default:
				}
			}
		}))
	nc, err := connectRetrying(ctx, url, opts, timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	p, err := producers.New(cfg, nc)
	if err != nil {
		return usageError{err.Error()}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.Close(cctx) // nothing left to send: Flush returned
	}()
	if err := record(p, m, help); err != nil {
		return fmt.Errorf("refused: %w", err)
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-denied:
			cancel(err)
		case <-fctx.Done():
		}
	}()
	err = p.Flush(fctx)
	if err == nil {
		fmt.Fprintf(stdout, "acknowledged: %s %s (producer %s, node %s)\n", m.kind, m.name, p.ID(), cfg.Node)
		return nil
	}
	if cause := context.Cause(fctx); errors.Is(cause, nats.ErrPermissionViolation) {
		return fmt.Errorf("refused: NATS denies this credential publishing to node %s as %s (its producer role's nodes and owners, docs/security.md): %v", cfg.Node, cfg.Name, cause)
	}
	if errors.Is(err, producers.ErrStreamFull) {
		return fmt.Errorf("refused: the delta stream is full, its operator raises --streams.delta-max-bytes (docs/operations.md, \"Stream bounds\"); not acknowledged within --timeout=%v", timeout)
	}
	return codedError{exitUnreachable, fmt.Errorf("not acknowledged within --timeout=%v (is node %s running with its streams on this NATS?): %w", timeout, cfg.Node, err)}
}

// connectRetrying connects to url until it succeeds or ctx ends; a server
// that refuses the credentials ends it at once.
func connectRetrying(ctx context.Context, url string, opts []nats.Option, timeout time.Duration) (*nats.Conn, error) {
	wait := 50 * time.Millisecond
	for {
		nc, err := nats.Connect(url, append(opts, nats.Timeout(min(2*time.Second, timeout)))...)
		if err == nil {
			return nc, nil
		}
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation") || strings.Contains(strings.ToLower(err.Error()), "authentication") {
			return nil, fmt.Errorf("refused: NATS at %s rejects the credentials (--nats.user, --nats.creds, --nats.nkey or --nats.token-file): %v", url, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, codedError{exitUnreachable, fmt.Errorf("NATS at %s not reached within --timeout=%v: %v", url, timeout, err)}
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// record registers m's metric in p and records its value.
func record(p *producers.Producer, m metricArgs, help string) error {
	switch m.kind {
	case "counter":
		v, err := p.NewFloatCounterVec(producers.Opts{Name: m.name, Help: help}, m.labelNames...)
		if err != nil {
			return err
		}
		c, err := v.With(m.labelVals...)
		if err != nil {
			return err
		}
		c.Add(m.value)
	case "gauge":
		v, err := p.NewFloatGaugeVec(producers.Opts{Name: m.name, Help: help}, m.labelNames...)
		if err != nil {
			return err
		}
		g, err := v.With(m.labelVals...)
		if err != nil {
			return err
		}
		g.Set(m.value)
	default:
		v, err := p.NewHistogramVec(producers.HistogramOpts{Name: m.name, Help: help, Buckets: m.buckets}, m.labelNames...)
		if err != nil {
			return err
		}
		h, err := v.With(m.labelVals...)
		if err != nil {
			return err
		}
		h.Observe(m.value)
	}
	return nil
}
