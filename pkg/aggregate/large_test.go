package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// sizes is a go-redis hook recording the largest command (in arguments)
// and the largest reply (in strings) the client sent and read.
type sizes struct {
	mu            sync.Mutex
	maxArgs       int
	maxReply      int
	before        func(cmd redis.Cmder) // optional, called before each command
	argCmd, reply string
}

func (s *sizes) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *sizes) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if s.before != nil {
			s.before(cmd)
		}
		err := next(ctx, cmd)
		s.note(cmd)
		return err
	}
}

func (s *sizes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if s.before != nil {
			for _, c := range cmds {
				s.before(c)
			}
		}
		err := next(ctx, cmds)
		for _, c := range cmds {
			s.note(c)
		}
		return err
	}
}

func (s *sizes) note(cmd redis.Cmder) {
	n := 0
	switch c := cmd.(type) {
	case *redis.ScanCmd:
		keys, _ := c.Val()
		n = len(keys)
	case *redis.MapStringStringCmd:
		n = 2 * len(c.Val())
	case *redis.StringSliceCmd:
		n = len(c.Val())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := len(cmd.Args()); a > s.maxArgs {
		s.maxArgs, s.argCmd = a, cmd.Name()
	}
	if n > s.maxReply {
		s.maxReply, s.reply = n, cmd.Name()
	}
}

// bigDump is an aggregate of hists histograms of 64 buckets (66 fields
// each: 63 bounds, +Inf, the sum) at mark.
func bigDump(hists int, mark uint64) *aggregate.Dump {
	bounds := make([]float64, 63)
	for i := range bounds {
		bounds[i] = float64(i + 1)
	}
	u := aggregate.Meta{Kind: aggregate.Histogram, Buckets: bounds}
	d := &aggregate.Dump{Node: "n1",
		Marks:    map[string]string{"stream": strconv.FormatUint(mark, 10), "p:p1": "7"},
		Meta:     map[string]string{},
		Series:   make(map[string]string, hists*66),
		Rejected: map[string]string{"invalid_value": "2"},
	}
	held := aggregate.Held{State: &aggregate.State{Node: "n1"}, Metas: map[string]aggregate.Meta{"lat": u}}
	d.Meta = held.MetaFields()
	for i := range hists {
		key := fmt.Sprintf(`lat{i="%d"}`, i)
		for b := range 64 {
			d.Series[aggregate.BucketField(key, b)] = strconv.Itoa(b + i)
		}
		d.Series[aggregate.SumField(key)] = strconv.Itoa(i)
	}
	return d
}

// An aggregate far larger than one call should carry is restored and
// dumped in calls of bounded size each way (so none trips a client
// timeout, however large the aggregate the caps allow), and comes back as
// it went in.
func TestDumpRestoreBounded(t *testing.T) {
	ctx := context.Background()
	rdb := harness.RedisClient(t, harness.Redis(t))
	hook := &sizes{}
	rdb.AddHook(hook)
	s := aggregate.NewStore(rdb, "", "n1")

	want := bigDump(1000, 42) // 66k series fields
	if err := s.Restore(ctx, want); err != nil {
		t.Fatal(err)
	}
	if hook.maxArgs > 2*aggregate.RestoreBatch+8 {
		t.Errorf("restore sent a %s of %d arguments: want at most %d", hook.argCmd, hook.maxArgs, 2*aggregate.RestoreBatch+8)
	}
	got, err := s.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// HSCAN's COUNT is a hint: a reply may pass it by a bucket chain.
	if limit := 3 * aggregate.DumpScanCount; hook.maxReply > limit {
		t.Errorf("dump read a %s reply of %d strings: want at most %d", hook.reply, hook.maxReply, limit)
	}
	for name, pair := range map[string][2]map[string]string{
		"marks": {want.Marks, got.Marks}, "meta": {want.Meta, got.Meta},
		"series": {want.Series, got.Series}, "rejected": {want.Rejected, got.Rejected},
	} {
		if !maps.Equal(pair[0], pair[1]) {
			t.Errorf("%s: restored and dumped %d fields, want %d", name, len(pair[1]), len(pair[0]))
		}
	}
	if err := s.Restore(ctx, want); !errors.Is(err, aggregate.ErrNotEmpty) {
		t.Fatalf("restore over an aggregate: %v, want ErrNotEmpty", err)
	}
}

// A dump read in several calls is still one version: an apply that lands
// while the series hash is being scanned makes it read again, never mix
// fields from before the apply with the mark after it. One that keeps
// changing through every scan is read in one atomic call instead, never
// mixed.
func TestDumpConsistentAcrossScan(t *testing.T) {
	ctx := context.Background()
	srv := harness.Redis(t)
	rdb, other := harness.RedisClient(t, srv), harness.RedisClient(t, srv)
	s, writer := aggregate.NewStore(rdb, "", "n1"), aggregate.NewStore(other, "", "n1")
	const n = 40000
	u := aggregate.NewUpdate()
	u.Describe("c_total", aggregate.Meta{Kind: aggregate.Counter})
	for i := range n {
		u.SetValue(fmt.Sprintf(`c_total{i="%d"}`, i), 1)
	}
	u.Expect, u.Mark = 0, 1
	if err := writer.Apply(ctx, u); err != nil {
		t.Fatal(err)
	}
	// Every HSCAN after the first of a read, applies once: all series
	// move to the next mark's value.
	var applies, limit uint64 = 0, 1
	hook := &sizes{before: func(cmd redis.Cmder) {
		if cmd.Name() != "hscan" || cmd.Args()[2] == "0" || applies >= limit {
			return
		}
		applies++
		u.Reset()
		for i := range n {
			u.SetValue(fmt.Sprintf(`c_total{i="%d"}`, i), float64(applies+1))
		}
		u.Expect, u.Mark = applies, applies+1
		if err := writer.Apply(ctx, u); err != nil {
			t.Error(err)
		}
	}}
	rdb.AddHook(hook)
	d, err := s.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if applies != 1 {
		t.Fatalf("%d applies during the dump: the series hash was read in one call", applies)
	}
	if d.Mark() != 2 || len(d.Series) != n {
		t.Fatalf("dump at mark %d with %d series, want 2 and %d", d.Mark(), len(d.Series), n)
	}
	for f, v := range d.Series {
		if v != "2" {
			t.Fatalf("dump at mark 2 holds %s = %s from mark 1", f, v)
		}
	}

	limit = 1000
	d, err = s.Dump(ctx)
	if err != nil {
		t.Fatalf("dump of an aggregate written during every scan: %v", err)
	}
	want := strconv.FormatUint(applies+1, 10)
	if d.Mark() != applies+1 || len(d.Series) != n {
		t.Fatalf("dump at mark %d with %d series, want %d and %d", d.Mark(), len(d.Series), applies+1, n)
	}
	for f, v := range d.Series {
		if v != want {
			t.Fatalf("dump at mark %d holds %s = %s", d.Mark(), f, v)
		}
	}
}

// A restore that stops half way leaves the aggregate torn, so the next
// session resets it rather than reading a part as a version.
func TestRestoreInterruptedIsTorn(t *testing.T) {
	srv := harness.Redis(t)
	rdb := harness.RedisClient(t, srv)
	s := aggregate.NewStore(rdb, "", "n1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook := &sizes{}
	rdb.AddHook(hook)
	hook.before = func(cmd redis.Cmder) {
		if cmd.Name() == "hset" {
			cancel() // the first batch of data goes; the context ends
		}
	}
	if err := s.Restore(ctx, bigDump(1000, 42)); err == nil {
		t.Fatal("restore with its context cancelled half way succeeded")
	}
	m, err := aggregate.NewStore(harness.RedisClient(t, srv), "", "n1").Marks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Torn || m.Stream != 0 {
		t.Fatalf("marks after a restore stopped half way: %+v, want torn", m)
	}
}
