package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/streams"
)

const dlqReplayUsage = `usage: jetmetrics dlq replay [flags] SEQ...
       jetmetrics dlq replay [flags] --reason=R
       jetmetrics dlq replay [flags] --all

Re-submits the rejected entries of dead letters, for letters that are now
valid (a limit was raised, a conflicting metric was renamed), each exactly
once: a letter's entries go to its node as a delta batch of a producer of
their own, "dlq-replay-<dlq id>-<seq>" on <prefix>.delta.<node>.dlq-replay.*,
whose batch mark makes the node count it once whatever is published again,
and the replay is recorded in the KV bucket <prefix>_dlq_replays so that a
later run skips it. Running replay twice, or again after a crash halfway,
applies each entry once. Entries still invalid come back as a new letter
with their reason. Letters are never deleted. Letters rejected whole as
undecodable, unknown_version or bad_envelope are not replayable.
Needs an admin credential (docs/operations.md, "Dead letters").

example:
  jetmetrics dlq replay --nats.url=nats://127.0.0.1:4222 --reason=cardinality_limit --dry-run
  jetmetrics dlq replay --nats.url=nats://127.0.0.1:4222 --reason=cardinality_limit

exit codes: 0 every letter chosen was replayed or skipped; 1 a letter
failed (its body gone, a publish refused), or refused; 2 usage error; 3 NATS
not reached within --timeout.
`

// replayOwner is the owner token of replayed batches: their producer ids
// start with it and "-", as the aggregator requires of an owned subject.
const replayOwner = "dlq-replay"

// notReplayable are the reasons of letters rejected whole for what they
// are, not for a limit: replaying cannot make them valid.
var notReplayable = map[string]bool{
	string(streams.ReasonUndecodable): true,
	string(streams.ReasonVersion):     true,
	string(streams.ReasonEnvelope):    true,
}

// replayBucket is the KV bucket recording replayed letters.
func replayBucket(sc streams.Config) string {
	return strings.ReplaceAll(sc.Prefix, "-", "_") + "_dlq_replays"
}

// replayRecord is the value recorded per replayed letter.
type replayRecord struct {
	Node     string    `json:"node"`
	Producer string    `json:"producer"`
	Subject  string    `json:"subject"`
	DeltaSeq uint64    `json:"delta_seq"`
	Entries  int       `json:"entries"`
	At       time.Time `json:"at"`
}

// replayer replays letters of one DLQ incarnation.
type replayer struct {
	js     jetstream.JetStream
	sc     streams.Config
	kv     jetstream.KeyValue // nil in a dry run before any replay
	deltas jetstream.Stream
	dlqID  string // the DLQ's creation time, base 36: letters' seqs restart with a new DLQ
	dry    bool
	out    io.Writer
	maxMsg int64

	replayed, skipped, failed, waiting int
	// checkpoints are the nodes' latest checkpoint versions, read once a
	// run.
	checkpoints map[string]uint64
}

func runDLQReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq replay", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs)
	reason := fs.String("reason", "", "replay every letter of this rejection reason")
	all := fs.Bool("all", false, "replay every letter")
	dry := fs.Bool("dry-run", false, "say what would be replayed, publish and record nothing")
	commandLineOnly(fs, "reason", "all", "dry-run")
	rest, err := parseCommand(fs, args, stdout, dlqReplayUsage, true)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if err := nf.check(); err != nil {
		return err
	}
	chosen := 0
	for _, b := range []bool{len(rest) > 0, *reason != "", *all} {
		if b {
			chosen++
		}
	}
	if chosen != 1 {
		return usageError{"dlq replay: want letters' SEQ..., or --reason=R, or --all (one of them; see -h)"}
	}
	var seqs []uint64
	for _, a := range rest {
		s, err := strconv.ParseUint(a, 10, 64)
		if err != nil || s == 0 {
			return usageError{fmt.Sprintf("dlq replay: SEQ %q: want a positive sequence number (dlq ls lists them)", a)}
		}
		seqs = append(seqs, s)
	}
	sc := nf.streams()
	filter, err := reasonFilter(sc, *reason)
	if err != nil {
		return err
	}
	nc, js, err := nf.connect(ctx, "jetmetrics dlq replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := newReplayer(ctx, js, sc, *dry, stdout)
	if err != nil {
		return err
	}
	r.maxMsg = nc.MaxPayload()
	verb := "replayed"
	if *dry {
		verb = "checked"
	}
	if len(seqs) > 0 {
		prog := newProgress(stderr, verb, len(seqs))
		for i, s := range seqs {
			prog.set(i)
			l, err := getLetter(ctx, js, sc, s)
			if err != nil {
				prog.done()
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fmt.Fprintf(stdout, "letter %d: failed: %v\n", s, err)
				r.failed++
				continue
			}
			if err := r.replay(ctx, l); err != nil {
				prog.done()
				return err
			}
		}
		prog.done()
	} else {
		var prog *progress
		n := 0
		err = scanLetters(ctx, js, sc, filter, func(total int) {
			prog = newProgress(stderr, verb, total)
		}, func(l *letter) error {
			prog.set(n)
			n++
			return r.replay(ctx, l)
		})
		if prog != nil {
			prog.done()
		}
		if err != nil {
			return err
		}
	}
	if *dry {
		fmt.Fprintf(stdout, "dry run: %d letters would be replayed, %d skipped, %d failed\n", r.replayed, r.skipped, r.failed)
	} else {
		fmt.Fprintf(stdout, "replayed %d letters, skipped %d, failed %d\n", r.replayed, r.skipped, r.failed)
	}
	if r.waiting > 0 {
		fmt.Fprintf(stdout, "%d letters wait for a checkpoint of their node: run the same command again in a minute\n", r.waiting)
	}
	switch {
	case r.failed > 0:
		return fmt.Errorf("%d letters failed to replay (see above)", r.failed)
	case r.waiting > 0 && !*dry:
		return fmt.Errorf("%d letters wait for a checkpoint (see above)", r.waiting)
	}
	return nil
}

func newReplayer(ctx context.Context, js jetstream.JetStream, sc streams.Config, dry bool, out io.Writer) (*replayer, error) {
	dlq, err := js.Stream(ctx, sc.DeadLetterStream())
	if err != nil {
		return nil, jsError("read "+sc.DeadLetterStream(), err)
	}
	info := dlq.CachedInfo()
	r := &replayer{js: js, sc: sc, dry: dry, out: out,
		dlqID: strconv.FormatInt(info.Created.UnixNano(), 36)}
	if r.deltas, err = js.Stream(ctx, sc.DeltaStream()); err != nil {
		return nil, jsError("read "+sc.DeltaStream(), err)
	}
	bucket := replayBucket(sc)
	r.kv, err = js.KeyValue(ctx, bucket)
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrBucketNotFound) && dry:
		r.kv = nil
	case errors.Is(err, jetstream.ErrBucketNotFound):
		// Records outlive the letters they are about by a day.
		ttl := info.Config.MaxAge
		if ttl > 0 {
			ttl += 24 * time.Hour
		}
		r.kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "jetmetrics dead letters replayed (jetmetrics dlq replay)",
			History:     1,
			TTL:         ttl,
			Storage:     info.Config.Storage,
			Replicas:    info.Config.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			r.kv, err = js.KeyValue(ctx, bucket)
		}
		if err != nil {
			return nil, jsError("create KV bucket "+bucket, err)
		}
	default:
		return nil, jsError("read KV bucket "+bucket, err)
	}
	return r, nil
}

// producer is the replay producer id of letter seq.
func (r *replayer) producer(seq uint64) string {
	return replayOwner + "-" + r.dlqID + "-" + strconv.FormatUint(seq, 10)
}

func (r *replayer) key(seq uint64) string { return r.dlqID + "." + strconv.FormatUint(seq, 10) }

func (r *replayer) skip(l *letter, why string) {
	r.skipped++
	fmt.Fprintf(r.out, "letter %d (%s, node %s): skipped: %s\n", l.Seq, l.Reason, dash(l.Node), why)
}

func (r *replayer) fail(l *letter, why string) {
	r.failed++
	fmt.Fprintf(r.out, "letter %d (%s, node %s): failed: %s\n", l.Seq, l.Reason, dash(l.Node), why)
}

// replay replays one letter: skipped when it was replayed before or cannot
// be, failed when its body is gone or the publish is refused. The order
// of the steps makes a crash anywhere safe: the publish is recorded only
// once acknowledged, a record missing after a crash is found again in the
// delta stream, and a batch published twice is one batch seq of one
// producer, applied once (and within the duplicate window not even
// stored twice). It returns an error only for what ends the run.
func (r *replayer) replay(ctx context.Context, l *letter) error {
	if notReplayable[l.Reason] {
		r.skip(l, "not replayable: the message was rejected whole as "+l.Reason)
		return nil
	}
	if err := streams.CheckToken("node", l.Node); err != nil {
		r.fail(l, "its node header: "+err.Error())
		return nil
	}
	key := r.key(l.Seq)
	if r.kv != nil {
		e, err := r.kv.Get(ctx, key)
		switch {
		case err == nil:
			var rec replayRecord
			_ = json.Unmarshal(e.Value(), &rec)
			r.skip(l, fmt.Sprintf("already replayed at %s (%s seq %d)", rec.At.UTC().Format(time.RFC3339), r.sc.DeltaStream(), rec.DeltaSeq))
			return nil
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return jsError("read KV bucket "+replayBucket(r.sc), err)
		}
	}
	// Not before a checkpoint covers the original: a node that loses its
	// Redis restores its latest checkpoint and reads the delta stream
	// after it again, with the limits in force then; a limit since raised
	// would apply the original on that read, and the replay too.
	switch ck, err := r.checkpoint(ctx, l.Node); {
	case err != nil:
		return err
	case l.Version == 0:
		r.fail(l, "not replayable: the letter does not say the version of the original, so whether a checkpoint covers it cannot be told")
		return nil
	case ck < l.Version:
		r.waiting++
		fmt.Fprintf(r.out, "letter %d (%s, node %s): waits: node %s's latest checkpoint (version %d) does not cover the original (version %d) yet; run again after its next checkpoint (every minute by default)\n",
			l.Seq, l.Reason, l.Node, l.Node, ck, l.Version)
		return nil
	}
	producer := r.producer(l.Seq)
	subject := r.sc.Subjects().OwnedDelta(l.Node, replayOwner, producer)
	rec := replayRecord{Node: l.Node, Producer: producer, Subject: subject}
	// Published before a crash that kept it from being recorded.
	switch m, err := r.deltas.GetLastMsgForSubject(ctx, subject); {
	case err == nil:
		rec.DeltaSeq, rec.At = m.Sequence, m.Time
		if err := r.record(ctx, key, rec); err != nil {
			return err
		}
		r.skip(l, fmt.Sprintf("already replayed (%s seq %d)", r.sc.DeltaStream(), m.Sequence))
		return nil
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return jsError("read "+r.sc.DeltaStream(), err)
	}

	body := l.data
	if l.BodyOmitted > 0 {
		orig, err := originalBody(ctx, r.js, r.sc, l)
		if err != nil {
			r.fail(l, fmt.Sprintf("not replayable: its body was omitted (%d bytes) and %v", l.BodyOmitted, err))
			return nil
		}
		body = orig
	}
	env, err := parseEnvelope(body)
	if err != nil {
		r.fail(l, "not replayable: its body does not decode: "+err.Error())
		return nil
	}
	idx, complete := l.rejectedEntries(len(env.Metrics))
	switch {
	case !complete:
		r.fail(l, fmt.Sprintf("not replayable: the letter lists %d of its %d rejected entries", len(idx), l.Entries))
		return nil
	case len(idx) == 0:
		r.skip(l, "no rejected entries")
		return nil
	}
	batch := envelope{Version: json.RawMessage(strconv.Itoa(streams.WireVersion)), Node: l.Node, Producer: producer, Seq: 1, Time: env.Time}
	for _, i := range idx {
		batch.Metrics = append(batch.Metrics, env.Metrics[i])
	}
	data, err := json.Marshal(batch)
	if err != nil {
		r.fail(l, err.Error())
		return nil
	}
	if int64(len(data))+1024 > r.maxMsg {
		r.fail(l, fmt.Sprintf("its %d rejected entries take %d bytes, more than the server's max payload %d", len(idx), len(data), r.maxMsg))
		return nil
	}
	rec.Entries = len(idx)
	if r.dry {
		r.replayed++
		fmt.Fprintf(r.out, "letter %d (%s, node %s): would replay %d entries as %s\n", l.Seq, l.Reason, l.Node, len(idx), producer)
		return nil
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	ack, err := r.js.PublishMsg(ctx, msg, jetstream.WithMsgID(producer+":1"), jetstream.WithExpectStream(r.sc.DeltaStream()))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if strings.Contains(strings.ToLower(err.Error()), "permission") || errors.Is(err, nats.ErrNoResponders) {
			return jsError("publish to "+subject, err)
		}
		r.fail(l, fmt.Sprintf("publish to %s: %v", subject, err))
		return nil
	}
	rec.DeltaSeq, rec.At = ack.Sequence, time.Now()
	if err := r.record(ctx, key, rec); err != nil {
		return err
	}
	r.replayed++
	fmt.Fprintf(r.out, "letter %d (%s, node %s): replayed %d entries as %s (%s seq %d)\n", l.Seq, l.Reason, l.Node, len(idx), producer, r.sc.DeltaStream(), ack.Sequence)
	return nil
}

// checkpoint is the version of node's latest checkpoint, 0 when it has
// none: read from the checkpoint's head, once a run.
func (r *replayer) checkpoint(ctx context.Context, node string) (uint64, error) {
	if v, ok := r.checkpoints[node]; ok {
		return v, nil
	}
	s, err := r.js.Stream(ctx, r.sc.SnapshotStream())
	if err != nil {
		return 0, jsError("read "+r.sc.SnapshotStream(), err)
	}
	var v uint64
	switch m, err := s.GetLastMsgForSubject(ctx, r.sc.Subjects().Checkpoint(node)); {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return 0, jsError("read the checkpoint of "+node, err)
	default:
		info, err := streams.ParseSnapshotHeaders(m.Header, node)
		if err != nil {
			return 0, fmt.Errorf("the checkpoint of %s: %w", node, err)
		}
		v = info.Version
	}
	if r.checkpoints == nil {
		r.checkpoints = map[string]uint64{}
	}
	r.checkpoints[node] = v
	return v, nil
}

// record notes a replayed letter in the bucket; a record there already
// (another run) is as good.
func (r *replayer) record(ctx context.Context, key string, rec replayRecord) error {
	if r.dry || r.kv == nil {
		return nil
	}
	b, _ := json.Marshal(rec)
	if _, err := r.kv.Create(ctx, key, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return jsError("record in KV bucket "+replayBucket(r.sc), err)
	}
	return nil
}
