package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
	"github.com/jetmetrics/jetmetrics/streams"
)

const dlqUsage = `usage: jetmetrics dlq ls [flags]
       jetmetrics dlq show [flags] SEQ
       jetmetrics dlq replay [flags] (SEQ... | --reason=R | --all) [--dry-run]

Dead letters: the input a node rejected, kept in the dead-letter stream
(JETMETRICS_DLQ) with the reason, the node, the original subject and stream
sequence. ls lists them with a summary by reason, show prints one in full,
replay re-submits the rejected entries of letters that are now valid (after
a limit was raised) exactly once. Letters are only read, never deleted.
Run "jetmetrics dlq <command> -h" for each command's flags.

exit codes: 0 success; 1 refused or failed (no such letter, a letter not
replayable, permission denied); 2 usage error; 3 NATS not reached.
`

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return usageError{"dlq: want ls, show or replay (see jetmetrics dlq -h)"}
	}
	switch args[0] {
	case "ls":
		return runDLQList(ctx, args[1:], stdout, stderr)
	case "show":
		return runDLQShow(ctx, args[1:], stdout, stderr)
	case "replay":
		return runDLQReplay(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	default:
		fmt.Fprint(stderr, dlqUsage)
		return usageError{fmt.Sprintf("dlq: unknown command %q: want ls, show or replay", args[0])}
	}
}

// dlqCommand runs "dlq name": for the flags reference (docs_cmd.go).
func dlqCommand(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return runDLQ(ctx, append([]string{name}, args...), stdout, stderr)
	}
}

// natsFlags are the connection flags of the commands that read streams.
type natsFlags struct {
	url     string
	prefix  string
	timeout time.Duration
	auth    natsauth.ClientOptions
}

func (f *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats.url", "nats://127.0.0.1:4222", "NATS server URL(s), comma separated")
	fs.StringVar(&f.prefix, "streams.prefix", "", "subject prefix of the node's streams (default the node's default)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for NATS and each JetStream request")
	fs.StringVar(&f.auth.CredsFile, "nats.creds", "", "JWT credentials file")
	fs.StringVar(&f.auth.NkeyFile, "nats.nkey", "", "nkey seed file")
	fs.StringVar(&f.auth.User, "nats.user", "", "user, with --nats.password-file (or JETMETRICS_NATS_PASSWORD)")
	fs.StringVar(&f.auth.PasswordFile, "nats.password-file", "", "file holding --nats.user's password")
	fs.StringVar(&f.auth.TokenFile, "nats.token-file", "", "file holding a token")
	fs.StringVar(&f.auth.TLSCAFile, "nats.tls.ca-file", "", "PEM CA certificates of the server's certificate")
	fs.StringVar(&f.auth.TLSCertFile, "nats.tls.cert-file", "", "PEM client certificate, with --nats.tls.key-file")
	fs.StringVar(&f.auth.TLSKeyFile, "nats.tls.key-file", "", "PEM private key of --nats.tls.cert-file")
}

// streams is the streams configuration of --streams.prefix.
func (f *natsFlags) streams() streams.Config { return streams.Config{Prefix: f.prefix}.WithDefaults() }

// check validates the flags; errors name the flag.
func (f *natsFlags) check() error {
	switch {
	case f.url == "":
		return flagError("nats.url", "", "want a NATS URL such as nats://127.0.0.1:4222")
	case f.timeout <= 0:
		return flagError("timeout", f.timeout.String(), "want a positive duration")
	}
	if f.prefix != "" {
		if err := streams.CheckToken("prefix", f.prefix); err != nil {
			return flagError("streams.prefix", f.prefix, err.Error())
		}
	}
	return nil
}

// connect connects with the flags' credentials.
func (f *natsFlags) connect(ctx context.Context, name string) (*nats.Conn, jetstream.JetStream, error) {
	f.auth.Password = os.Getenv(natsPasswordEnv)
	opts, err := f.auth.NATSOptions()
	if err != nil {
		return nil, nil, usageError{"NATS credentials (--nats.*): " + err.Error()}
	}
	opts = append(opts, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	nc, err := connectRetrying(cctx, f.url, opts, f.timeout)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(f.timeout))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// jsError turns a JetStream error into one that says what to do: a
// permission error names the credential flags, a missing stream the node.
func jsError(what string, err error) error {
	switch {
	case errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permission"):
		return fmt.Errorf("refused: %s: this credential may not (use an admin credential, docs/operations.md \"Dead letters\"): %v", what, err)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%s: no such stream (is a node running with --streams.prefix as given?): %v", what, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders):
		return codedError{exitUnreachable, fmt.Errorf("%s: no answer within --timeout (is JetStream enabled on this NATS?): %v", what, err)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// letter is one dead letter as read from the stream.
type letter struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Reason   string    `json:"reason"`
	Node     string    `json:"node"`
	Producer string    `json:"producer,omitempty"`
	// Subject and StreamSeq are where the original was in the delta stream.
	Subject   string `json:"subject"`
	StreamSeq uint64 `json:"stream_seq"`
	// Version is the node's aggregate version at the original (0 when
	// the letter does not say).
	Version uint64 `json:"version,omitempty"`
	// Entries is how many entries were rejected: the Entry-Count header,
	// or every entry of a message rejected whole.
	Entries     int    `json:"entries"`
	Whole       bool   `json:"whole_message"`
	Error       string `json:"error"`
	BodyOmitted int    `json:"body_omitted,omitempty"`

	header nats.Header
	data   []byte
}

// envelope is a delta batch with its entries left raw, so that a letter
// whose entries do not decode still shows, and replays, as it was sent.
type envelope struct {
	Version  json.RawMessage   `json:"v"`
	Node     string            `json:"node"`
	Producer string            `json:"producer"`
	Seq      uint64            `json:"seq"`
	Time     int64             `json:"time,omitempty"`
	Metrics  []json.RawMessage `json:"metrics"`
}

func parseEnvelope(data []byte) (*envelope, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// newLetter reads a letter's headers (and its body, for the producer and
// the entry count of a message rejected whole).
func newLetter(sc streams.Config, seq uint64, at time.Time, h nats.Header, data []byte) *letter {
	l := &letter{Seq: seq, Time: at, header: h, data: data,
		Reason:  h.Get(aggregator.HeaderReason),
		Node:    h.Get(aggregator.HeaderNode),
		Subject: h.Get(aggregator.HeaderSubject),
		Error:   h.Get(aggregator.HeaderError),
	}
	l.StreamSeq, _ = strconv.ParseUint(h.Get(aggregator.HeaderSeq), 10, 64)
	l.BodyOmitted, _ = strconv.Atoi(h.Get(aggregator.HeaderBodyOmitted))
	if v, err := strconv.ParseUint(h.Get(aggregator.HeaderVersion), 10, 64); err == nil {
		l.Version = v
	} else if f := strings.Split(h.Get(jetstream.MsgIDHeader), ":"); len(f) == 3 && f[0] == l.Node {
		// Letters from before the header: their message id is
		// node:version:reason.
		l.Version, _ = strconv.ParseUint(f[1], 10, 64)
	}
	if ds, err := sc.Subjects().ParseDelta(l.Subject); err == nil {
		l.Producer = ds.Producer
	}
	var env *envelope
	if len(data) > 0 {
		env, _ = parseEnvelope(data)
	}
	if l.Producer == "" && env != nil {
		l.Producer = env.Producer
	}
	if n, err := strconv.Atoi(h.Get(aggregator.HeaderEntryCount)); err == nil {
		l.Entries = n
	} else {
		l.Whole = true
		if env != nil {
			l.Entries = len(env.Metrics)
		}
	}
	return l
}

// rejectedEntries returns the indices of the letter's rejected entries
// among n, and false when the header lists only the first ones.
func (l *letter) rejectedEntries(n int) ([]int, bool) {
	if l.Whole {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all, true
	}
	var idx []int
	for _, s := range strings.Split(l.header.Get(aggregator.HeaderEntries), ",") {
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || i < 0 || i >= n {
			continue
		}
		idx = append(idx, i)
	}
	return idx, len(idx) == l.Entries
}

// scanLetters calls fn with each letter of the DLQ on filter, in stream
// order, up to the last letter stored when it starts (letters arriving
// meanwhile are left for the next run). total is how many it will read.
func scanLetters(ctx context.Context, js jetstream.JetStream, sc streams.Config, filter string, start func(total int), fn func(*letter) error) error {
	name := sc.DeadLetterStream()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return jsError("read "+name, err)
	}
	last := s.CachedInfo().State.LastSeq
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return jsError("read "+name, err)
	}
	info := cons.CachedInfo()
	if info == nil {
		if info, err = cons.Info(ctx); err != nil {
			return jsError("read "+name, err)
		}
	}
	start(int(info.NumPending))
	if info.NumPending == 0 || last == 0 {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return jsError("read "+name, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return jsError("read "+name, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return jsError("read "+name, err)
		}
		if md.Sequence.Stream > last {
			return nil
		}
		if err := fn(newLetter(sc, md.Sequence.Stream, md.Timestamp, msg.Headers(), msg.Data())); err != nil {
			return err
		}
		if md.Sequence.Stream == last || md.NumPending == 0 {
			return nil
		}
	}
}

// reasonFilter is the DLQ subject of --reason, or every reason's.
func reasonFilter(sc streams.Config, reason string) (string, error) {
	if reason == "" {
		return sc.Subjects().DeadLetterAll(), nil
	}
	if !slices.Contains(streams.Reasons, streams.Reason(reason)) {
		var names []string
		for _, r := range streams.Reasons {
			names = append(names, string(r))
		}
		return "", flagError("reason", reason, "want one of "+strings.Join(names, ", "))
	}
	return sc.Subjects().DeadLetter(reason), nil
}

const dlqListUsage = `usage: jetmetrics dlq ls [--reason=R] [--node=N] [--producer=P] [--limit=100] [--output=json]

Lists the dead letters (newest --limit of those matching), oldest first:
the letter's sequence in the dead-letter stream, when it was written, the
reason, the node that rejected it, the producer, how many entries were
rejected and the error; then a summary by reason of every letter matching.
--producer matches a producer id or its name (the id up to its last "-").

example:
  jetmetrics dlq ls --nats.url=nats://127.0.0.1:4222 --reason=cardinality_limit --node=node-a

exit codes: 0 listed; 1 refused (permission denied, no dead-letter stream);
2 usage error; 3 NATS not reached within --timeout.
`

// dlqSummary counts letters and rejected entries of one reason.
type dlqSummary struct {
	Reason  string `json:"reason"`
	Letters int    `json:"letters"`
	Entries int    `json:"entries"`
}

type dlqListing struct {
	Letters []*letter    `json:"letters"`
	Matched int          `json:"matched"`
	Summary []dlqSummary `json:"summary"`
}

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq ls", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs)
	reason := fs.String("reason", "", "only letters of this rejection reason")
	node := fs.String("node", "", "only letters of this node")
	producer := fs.String("producer", "", "only letters of this producer id or producer name")
	limit := fs.Int("limit", 100, "most letters listed (the newest); the summary counts all")
	output := fs.String("output", "table", "output format: table or json")
	commandLineOnly(fs, "reason", "node", "producer", "limit")
	rest, err := parseCommand(fs, args, stdout, dlqListUsage, false)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (flags are --name=value)", rest[0])}
	}
	if err := nf.check(); err != nil {
		return err
	}
	switch {
	case *output != "table" && *output != "json":
		return flagError("output", *output, "want table or json")
	case *limit < 0:
		return flagError("limit", strconv.Itoa(*limit), "want 0 or more")
	}
	sc := nf.streams()
	filter, err := reasonFilter(sc, *reason)
	if err != nil {
		return err
	}
	nc, js, err := nf.connect(ctx, "jetmetrics dlq ls")
	if err != nil {
		return err
	}
	defer nc.Close()

	var out dlqListing
	sums := map[string]*dlqSummary{}
	var prog *progress
	n := 0
	err = scanLetters(ctx, js, sc, filter, func(total int) {
		prog = newProgress(stderr, "read", total)
	}, func(l *letter) error {
		n++
		prog.set(n)
		if (*node != "" && l.Node != *node) || (*producer != "" && !producerMatches(l.Producer, *producer)) {
			return nil
		}
		out.Matched++
		s := sums[l.Reason]
		if s == nil {
			s = &dlqSummary{Reason: l.Reason}
			sums[l.Reason] = s
		}
		s.Letters++
		s.Entries += l.Entries
		if *limit > 0 {
			out.Letters = append(out.Letters, l)
			if len(out.Letters) >= 2*(*limit) {
				out.Letters = append(out.Letters[:0], out.Letters[len(out.Letters)-*limit:]...)
			}
		}
		l.data = nil // the summary keeps only the headers' figures
		return nil
	})
	if prog != nil {
		prog.done()
	}
	if err != nil {
		return err
	}
	if len(out.Letters) > *limit {
		out.Letters = out.Letters[len(out.Letters)-*limit:]
	}
	if out.Letters == nil {
		out.Letters = []*letter{}
	}
	out.Summary = []dlqSummary{}
	for _, s := range sums {
		out.Summary = append(out.Summary, *s)
	}
	sort.Slice(out.Summary, func(i, j int) bool {
		a, b := out.Summary[i], out.Summary[j]
		return a.Letters > b.Letters || (a.Letters == b.Letters && a.Reason < b.Reason)
	})
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SEQ\tTIME\tREASON\tNODE\tPRODUCER\tENTRIES\tERROR\n")
	for _, l := range out.Letters {
		entries := strconv.Itoa(l.Entries)
		if l.Whole {
			entries += " (all)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Seq, l.Time.UTC().Format(time.RFC3339), l.Reason, dash(l.Node), dash(l.Producer), entries, oneLine(l.Error, 100))
	}
	tw.Flush()
	if hidden := out.Matched - len(out.Letters); hidden > 0 {
		fmt.Fprintf(stdout, "(%d older letters not listed: raise --limit)\n", hidden)
	}
	fmt.Fprintf(stdout, "\n%d letters", out.Matched)
	if out.Matched > 0 {
		fmt.Fprint(stdout, " by reason:")
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	for _, s := range out.Summary {
		fmt.Fprintf(tw, "  %s\t%d letters\t%d entries\n", s.Reason, s.Letters, s.Entries)
	}
	return tw.Flush()
}

// producerMatches reports whether a producer id is want or one of want's
// ids (want is its name: the id is want, "-" and an incarnation id).
func producerMatches(id, want string) bool {
	return id == want || strings.HasPrefix(id, want+"-")
}

// oneLine cuts s to n runes on one line, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return dash(s)
}

const dlqShowUsage = `usage: jetmetrics dlq show [flags] SEQ

Prints one dead letter in full: its headers, then the delta batch decoded,
each entry on a line and the rejected ones marked REJECTED; a body that
does not decode is printed raw. A letter stored without its body (the
Jetmetrics-Body-Omitted header) shows the original from the delta stream
while that still holds it.

example:
  jetmetrics dlq show --nats.url=nats://127.0.0.1:4222 42

exit codes: 0 shown; 1 no such letter, or refused; 2 usage error; 3 NATS
not reached within --timeout.
`

func runDLQShow(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("dlq show", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs)
	rest, err := parseCommand(fs, args, stdout, dlqShowUsage, true)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if err := nf.check(); err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"dlq show: want one letter's SEQ (dlq ls lists them)"}
	}
	seq, err := strconv.ParseUint(rest[0], 10, 64)
	if err != nil || seq == 0 {
		return usageError{fmt.Sprintf("dlq show: SEQ %q: want a positive sequence number (dlq ls lists them)", rest[0])}
	}
	sc := nf.streams()
	nc, js, err := nf.connect(ctx, "jetmetrics dlq show")
	if err != nil {
		return err
	}
	defer nc.Close()
	l, err := getLetter(ctx, js, sc, seq)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "letter %d of %s, written %s\n", l.Seq, sc.DeadLetterStream(), l.Time.UTC().Format(time.RFC3339Nano))
	keys := make([]string, 0, len(l.header))
	for k := range l.header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range l.header[k] {
			fmt.Fprintf(stdout, "  %s: %s\n", k, v)
		}
	}
	body := l.data
	if l.BodyOmitted > 0 {
		orig, err := originalBody(ctx, js, sc, l)
		if err != nil {
			fmt.Fprintf(stdout, "\nbody: omitted (%d bytes) and %v\n", l.BodyOmitted, err)
			return nil
		}
		fmt.Fprintf(stdout, "\nbody: omitted from the letter; the original from %s seq %d:\n", sc.DeltaStream(), l.StreamSeq)
		body = orig
	}
	env, err := parseEnvelope(body)
	if err != nil {
		fmt.Fprintf(stdout, "\nbody (%d bytes, does not decode: %v):\n%s\n", len(body), err, shortBody(body))
		return nil
	}
	fmt.Fprintf(stdout, "\nbatch: version %s, node %s, producer %s, seq %d", string(env.Version), env.Node, env.Producer, env.Seq)
	if env.Time != 0 {
		fmt.Fprintf(stdout, ", cut %s", time.UnixMilli(env.Time).UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(stdout, ", %d entries\n", len(env.Metrics))
	idx, complete := l.rejectedEntries(len(env.Metrics))
	rejected := map[int]bool{}
	for _, i := range idx {
		rejected[i] = true
	}
	if !complete {
		fmt.Fprintf(stdout, "(the letter lists %d of its %d rejected entries)\n", len(idx), l.Entries)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "#\t\tTYPE\tSERIES\tVALUE\n")
	for i, raw := range env.Metrics {
		mark := ""
		if rejected[i] {
			mark = "REJECTED"
		}
		var m streams.Metric
		if err := json.Unmarshal(raw, &m); err != nil {
			fmt.Fprintf(tw, "%d\t%s\t?\t%s\t\n", i, mark, shortBody(raw))
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i, mark, m.Type, seriesText(m), valueText(m))
	}
	return tw.Flush()
}

// getLetter reads the letter at seq.
func getLetter(ctx context.Context, js jetstream.JetStream, sc streams.Config, seq uint64) (*letter, error) {
	name := sc.DeadLetterStream()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, jsError("read "+name, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("no letter at seq %d of %s (dlq ls lists them; letters older than the stream's max age are gone)", seq, name)
	}
	if err != nil {
		return nil, jsError(fmt.Sprintf("read %s seq %d", name, seq), err)
	}
	return newLetter(sc, m.Sequence, m.Time, m.Header, m.Data), nil
}

// originalBody fetches the body of a letter stored without it from the
// delta stream, if that still holds it.
func originalBody(ctx context.Context, js jetstream.JetStream, sc streams.Config, l *letter) ([]byte, error) {
	s, err := js.Stream(ctx, sc.DeltaStream())
	if err != nil {
		return nil, jsError("read "+sc.DeltaStream(), err)
	}
	m, err := s.GetMsg(ctx, l.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Subject != l.Subject) {
		return nil, fmt.Errorf("%s no longer holds the original at seq %d", sc.DeltaStream(), l.StreamSeq)
	}
	if err != nil {
		return nil, jsError(fmt.Sprintf("read %s seq %d", sc.DeltaStream(), l.StreamSeq), err)
	}
	return m.Data, nil
}

func shortBody(b []byte) string {
	const n = 4096
	if len(b) > n {
		return fmt.Sprintf("%q… (%d more bytes)", b[:n], len(b)-n)
	}
	return fmt.Sprintf("%q", b)
}

func seriesText(m streams.Metric) string {
	if len(m.Labels) == 0 {
		return m.Name
	}
	keys := make([]string, 0, len(m.Labels))
	for k := range m.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(m.Name + "{")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, m.Labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

func valueText(m streams.Metric) string {
	if m.Type == streams.KindHistogram {
		return fmt.Sprintf("buckets %v counts %v sum %g", m.Buckets, m.Counts, m.Sum)
	}
	return strconv.FormatFloat(m.Value, 'g', -1, 64)
}
