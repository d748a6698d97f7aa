package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// dlqRun runs "jetmetrics dlq args..." and returns its stdout and error.
func dlqRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"dlq"}, args...), &stdout, &stderr)
	if stderr.Len() > 0 {
		t.Errorf("dlq %v wrote to stderr (progress is for terminals only): %q", args, stderr.String())
	}
	return stdout.String(), err
}

// produceRejected publishes, as producer "billing" of node n1, two
// batches: the first with five series of dlq_jobs_total and one series of
// dlq_wide_total with two labels, the second with the five again. It
// returns what the aggregate holds once every entry is applied.
func produceRejected(t *testing.T, rn *harness.RunningNode) map[string]float64 {
	t.Helper()
	p, err := producers.New(producers.Config{Node: "n1", Name: "billing", FlushInterval: time.Hour}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	jobs, err := p.NewCounterVec(producers.Opts{Name: "dlq_jobs_total", Help: "jobs"}, "queue")
	if err != nil {
		t.Fatal(err)
	}
	wide, err := p.NewCounterVec(producers.Opts{Name: "dlq_wide_total", Help: "wide"}, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]float64{}
	for round := range 2 {
		for i := range 5 {
			jobs.MustWith(fmt.Sprintf("q%d", i)).Add(uint64(i + 1))
			want[fmt.Sprintf(`dlq_jobs_total{queue="q%d"}`, i)] += float64(i + 1)
		}
		if round == 0 {
			wide.MustWith("x", "y").Add(7)
			want[`dlq_wide_total{a="x",b="y"}`] = 7
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// Dead letters made for real (a node with a per-metric series cap of 2
// and at most one label) are listed by reason with their entry counts,
// shown decoded with the rejected entries marked, and, once the node runs
// with higher limits on the same data and Redis, replayed exactly once:
// one letter first (an interrupted run), then --all, then --all again and
// a replay whose record was lost (a crash between publish and record).
func TestDLQListShowReplay(t *testing.T) {
	rs := harness.Redis(t)
	dir := t.TempDir()
	low := node.Config{Name: "n1", DataDir: dir, RedisURL: rs.URL(), MaxSeriesPerMetric: 2, Limits: series.Limits{MaxLabels: 1}}
	rn := harness.StartNode(t, low)
	want := produceRejected(t, rn)
	nats := "--nats.url=" + rn.NATSURL()

	var listing dlqListing
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := dlqRun(t, "ls", nats, "--output=json")
		if err != nil {
			return err
		}
		listing = dlqListing{}
		if err := json.Unmarshal([]byte(out), &listing); err != nil {
			return fmt.Errorf("not JSON: %v: %q", err, out)
		}
		if listing.Matched != 3 {
			return fmt.Errorf("%d letters, want 3", listing.Matched)
		}
		return nil
	})
	wantSummary := []dlqSummary{{"cardinality_limit", 2, 6}, {"too_many_labels", 1, 1}}
	if fmt.Sprint(listing.Summary) != fmt.Sprint(wantSummary) {
		t.Errorf("summary %+v, want %+v", listing.Summary, wantSummary)
	}
	var card []uint64
	for _, l := range listing.Letters {
		if l.Node != "n1" || !strings.HasPrefix(l.Producer, "billing-") || l.Whole || l.Error == "" || l.StreamSeq == 0 {
			t.Errorf("letter %+v: want node n1, a billing producer, some entries, an error and the delta seq", l)
		}
		if l.Reason == "cardinality_limit" {
			card = append(card, l.Seq)
		}
	}
	if len(card) != 2 {
		t.Fatalf("cardinality letters %v, want 2", card)
	}

	out, err := dlqRun(t, "ls", nats, "--reason=cardinality_limit", "--producer=billing")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dlq ls:\n%s", out)
	for _, w := range []string{"SEQ", "cardinality_limit", "billing-", "\n2 letters by reason:", "cardinality_limit  2 letters  6 entries"} {
		if !strings.Contains(out, w) {
			t.Errorf("dlq ls lacks %q", w)
		}
	}
	if strings.Contains(out, "too_many_labels") {
		t.Errorf("--reason=cardinality_limit lists other reasons:\n%s", out)
	}
	if out, err = dlqRun(t, "ls", nats, "--node=n2"); err != nil || !strings.Contains(out, "\n0 letters\n") {
		t.Errorf("--node=n2: %v\n%s", err, out)
	}

	out, err = dlqRun(t, "show", nats, strconv.FormatUint(card[0], 10))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dlq show:\n%s", out)
	for _, w := range []string{"Jetmetrics-Reason: cardinality_limit", "Jetmetrics-Entry-Count: 3", "producer billing-", `dlq_jobs_total{queue="q`, "series dlq_jobs_total"} {
		if !strings.Contains(out, w) {
			t.Errorf("dlq show lacks %q", w)
		}
	}
	if n := strings.Count(out, "REJECTED"); n != 3 {
		t.Errorf("dlq show marks %d entries REJECTED, want 3", n)
	}
	if _, err := dlqRun(t, "show", nats, "999"); err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "no letter at seq 999") {
		t.Errorf("show 999: %v, want no letter, exit 1", err)
	}

	// No replay before a checkpoint covers the originals: a Redis loss
	// would re-read them with the limits of the day, then the replay too.
	// The first checkpoint of the node went out before its letters; the
	// next is a minute away.
	out, err = dlqRun(t, "replay", nats, "--all")
	if err == nil || exitCode(err) != 1 || !strings.Contains(out, "3 letters wait for a checkpoint") || !strings.Contains(out, "replayed 0 letters, skipped 0, failed 0") {
		t.Fatalf("replay before a checkpoint covers the letters: %v\n%s", err, out)
	}

	// The same data and Redis, default limits. The node's first snapshot
	// after the start is a checkpoint, at the version the letters were
	// rejected at or later.
	rn.Stop(t)
	high := low
	high.MaxSeriesPerMetric, high.Limits = 0, series.Limits{}
	rn = harness.StartNode(t, high)
	nats = "--nats.url=" + rn.NATSURL()

	// A dry run publishes and records nothing.
	harness.Eventually(t, 30*time.Second, func() error {
		out, err = dlqRun(t, "replay", nats, "--all", "--dry-run")
		if err != nil || !strings.Contains(out, "dry run: 3 letters would be replayed, 0 skipped, 0 failed") {
			return fmt.Errorf("dry run: %v\n%s", err, out)
		}
		return nil
	})

	out, err = dlqRun(t, "replay", nats, strconv.FormatUint(card[0], 10))
	if err != nil || !strings.Contains(out, "replayed 1 letters, skipped 0, failed 0") {
		t.Fatalf("replay %d: %v\n%s", card[0], err, out)
	}
	out, err = dlqRun(t, "replay", nats, "--all")
	t.Logf("replay --all:\n%s", out)
	if err != nil || !strings.Contains(out, "replayed 2 letters, skipped 1, failed 0") || !strings.Contains(out, fmt.Sprintf("letter %d (cardinality_limit, node n1): skipped: already replayed", card[0])) {
		t.Fatalf("replay --all: %v\n%s", err, out)
	}
	wantSamples(t, rn.URL, want)

	out, err = dlqRun(t, "replay", nats, "--all")
	if err != nil || !strings.Contains(out, "replayed 0 letters, skipped 3, failed 0") {
		t.Fatalf("second replay --all: %v\n%s", err, out)
	}
	// A run that crashed after publishing, before recording: the record
	// is gone, the delta stream still holds the replay.
	js, err := jetstream.New(rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, "jetmetrics_dlq_replays")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("replay records %v (%v), want 3", keys, err)
	}
	if err := kv.Purge(ctx, keys[0]); err != nil {
		t.Fatal(err)
	}
	out, err = dlqRun(t, "replay", nats, "--all")
	if err != nil || !strings.Contains(out, "replayed 0 letters, skipped 3, failed 0") || !strings.Contains(out, "already replayed (JETMETRICS_DELTAS seq") {
		t.Fatalf("replay --all after a lost record: %v\n%s", err, out)
	}
	wantSamples(t, rn.URL, want)
	out, err = dlqRun(t, "ls", nats)
	if err != nil || !strings.Contains(out, "\n3 letters by reason:") {
		t.Errorf("after replays the DLQ holds other than its 3 letters: %v\n%s", err, out)
	}
}

// Bad usage of dlq and top is exit 2 with one line naming what is wrong,
// before connecting to anything.
func TestDLQAndTopUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "want ls, show or replay"},
		{[]string{"dlq", "purge"}, `unknown command "purge"`},
		{[]string{"dlq", "ls", "--reason=bogus"}, `invalid value "bogus" for --reason: want one of`},
		{[]string{"dlq", "ls", "--output=yaml"}, "--output"},
		{[]string{"dlq", "ls", "--limit=-1"}, "--limit"},
		{[]string{"dlq", "ls", "--timeout=0s"}, "--timeout"},
		{[]string{"dlq", "ls", "extra"}, `unexpected argument "extra"`},
		{[]string{"dlq", "show"}, "want one letter's SEQ"},
		{[]string{"dlq", "show", "x"}, `SEQ "x"`},
		{[]string{"dlq", "replay"}, "want letters' SEQ..., or --reason=R, or --all"},
		{[]string{"dlq", "replay", "1", "--all"}, "one of them"},
		{[]string{"dlq", "replay", "--all", "--reason=oversize"}, "one of them"},
		{[]string{"dlq", "replay", "0"}, `SEQ "0"`},
		{[]string{"dlq", "replay", "--reason=nope"}, "--reason"},
		{[]string{"top", "--interval=1ms"}, "--interval"},
		{[]string{"top", "--limit=0"}, "--limit"},
		{[]string{"top", "--web.url=127.0.0.1:9480"}, "--web.url"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if got := exitCode(err); got != 2 {
				t.Errorf("exit code %d, want 2", got)
			}
		})
	}
}

// The flags that choose what a command acts on have no environment twin: a
// JETMETRICS_ALL left in a shell never replays every letter, and
// publish's JETMETRICS_NODE never filters a dlq listing.
func TestSelectionFlagsIgnoreEnvironment(t *testing.T) {
	t.Setenv("JETMETRICS_ALL", "true")
	t.Setenv("JETMETRICS_REASON", "oversize")
	t.Setenv("JETMETRICS_LIMIT", "0")
	err := run(context.Background(), []string{"dlq", "replay"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "want letters' SEQ..., or --reason=R, or --all") || exitCode(err) != 2 {
		t.Fatalf("dlq replay with JETMETRICS_ALL and JETMETRICS_REASON set: %v, want the usage error", err)
	}
	// --limit=0 from the environment would be refused by top; it is not read.
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	limit := fs.Int("limit", 20, "")
	commandLineOnly(fs, "limit")
	if err := parseFlags(fs, nil, &bytes.Buffer{}); err != nil || *limit != 20 {
		t.Fatalf("limit = %d (%v), want the default 20 with JETMETRICS_LIMIT=0 set", *limit, err)
	}
	if err := parseFlags(fs, []string{"--limit=3"}, &bytes.Buffer{}); err != nil || *limit != 3 {
		t.Fatalf("limit = %d (%v), want 3 from the command line", *limit, err)
	}
}

// Every new command's help gives an example and the exit codes.
func TestDLQAndTopHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"dlq", "-h"}, []string{"dlq ls", "dlq show", "dlq replay", "exit codes:"}},
		{[]string{"dlq", "ls", "-h"}, []string{"example:", "jetmetrics dlq ls --nats.url=", "exit codes:", "--reason", "--producer  [command line only]", "JETMETRICS_NATS_URL"}},
		{[]string{"dlq", "show", "-h"}, []string{"example:", "jetmetrics dlq show --nats.url=", "REJECTED", "exit codes:"}},
		{[]string{"dlq", "replay", "-h"}, []string{"example:", "--dry-run", "exactly", "admin", "exit codes:", "--all  [command line only]"}},
		{[]string{"top", "-h"}, []string{"example:", "jetmetrics top --web.url=", "exit codes:", "--once", "JETMETRICS_INTERVAL"}},
		{[]string{"help"}, []string{"top", "dlq"}},
	} {
		var stdout bytes.Buffer
		if err := run(context.Background(), tc.args, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%v lacks %q:\n%s", tc.args, w, stdout.String())
			}
		}
	}
}

// A letter replayed while its cause stands is rejected again: it comes
// back as one new letter with the same reason from the replay's producer,
// the original is kept, and replaying the original again does nothing.
func TestDLQReplayStillInvalid(t *testing.T) {
	cfg := node.Config{Name: "n1", DataDir: t.TempDir(), RedisURL: harness.Redis(t).URL(), MaxSeriesPerMetric: 2}
	rn := harness.StartNode(t, cfg)
	produceRejected(t, rn)
	nats := "--nats.url=" + rn.NATSURL()
	var first uint64
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := dlqRun(t, "ls", nats, "--output=json", "--reason=cardinality_limit")
		if err != nil {
			return err
		}
		var l dlqListing
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			return err
		}
		if l.Matched != 2 {
			return fmt.Errorf("%d letters, want 2", l.Matched)
		}
		first = l.Letters[0].Seq
		return nil
	})
	seq := strconv.FormatUint(first, 10)
	// A restart checkpoints at its first snapshot: the letters are covered.
	rn.Stop(t)
	rn = harness.StartNode(t, cfg)
	nats = "--nats.url=" + rn.NATSURL()
	harness.Eventually(t, 30*time.Second, func() error {
		if out, err := dlqRun(t, "replay", nats, seq); err != nil || !strings.Contains(out, "replayed 1 letters") {
			return fmt.Errorf("replay %s: %v\n%s", seq, err, out)
		}
		return nil
	})
	var again *letter
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := dlqRun(t, "ls", nats, "--output=json", "--producer="+replayOwner)
		if err != nil {
			return err
		}
		var l dlqListing
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			return err
		}
		if l.Matched != 1 {
			return fmt.Errorf("%d letters from the replay, want 1", l.Matched)
		}
		again = l.Letters[0]
		return nil
	})
	if again.Reason != "cardinality_limit" || again.Entries != 3 || !strings.Contains(again.Error, "its limit") {
		t.Errorf("letter of the replay %+v, want cardinality_limit with 3 entries", again)
	}
	if out, err := dlqRun(t, "replay", nats, seq); err != nil || !strings.Contains(out, "replayed 0 letters, skipped 1") {
		t.Fatalf("replay %s again: %v\n%s", seq, err, out)
	}
	out, err := dlqRun(t, "ls", nats, "--reason=cardinality_limit")
	if err != nil || !strings.Contains(out, "\n3 letters by reason:") {
		t.Errorf("want the 2 letters and the replay's one: %v\n%s", err, out)
	}
}
