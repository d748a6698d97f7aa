package producers

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/streams"
)

// Producer owns a registry of metrics and the goroutine that flushes their
// deltas to JetStream. Create it with New and stop it with Close.
type Producer struct {
	cfg     Config
	id      string
	subject string
	stream  string
	nc      *nats.Conn
	js      jetstream.JetStream
	log     zerolog.Logger

	regMu    sync.Mutex
	families map[string]*family
	order    []*family // registration order; only grows

	// The latency handles, one per service, and their families, registered
	// with the first handle.
	latMu     sync.Mutex
	latencies map[string]*ServiceLatency
	latHist   *HistogramVec
	latChecks *CounterVec

	// Rounds: a round cuts the deltas and publishes them until
	// acknowledged. Flush waits for a round started after its call.
	mu        sync.Mutex
	started   uint64
	completed uint64
	roundDone chan struct{} // closed and replaced when a round completes

	poke      chan struct{} // asks the loop for a round now
	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	abort     context.CancelCauseFunc // ends the final flush early
	loopCtx   context.Context
	done      chan struct{} // closed when the loop has returned
	closeErr  error         // written by the loop before done is closed

	fl flusher // owned by the loop

	// Stats.
	published   atomic.Uint64
	duplicates  atomic.Uint64
	retries     atomic.Uint64
	inFlight    atomic.Int64
	pending     atomic.Int64
	lastCut     atomic.Int64 // unix nanos of the last cut all of whose messages are acknowledged
	seriesCount atomic.Int64
	dropped     atomic.Uint64
	rejected    atomic.Uint64
	seq         atomic.Uint64
	// publishErr is the last failed attempt's error while a message is
	// unacknowledged, nil otherwise.
	publishErr atomic.Pointer[error]
}

// New validates cfg and starts the producer's flush goroutine. The
// connection stays the caller's: the producer never closes it, and keeps
// working through outages only if it reconnects forever; connect with
// nats.MaxReconnects(-1) and nats.RetryOnFailedConnect(true). New does no
// I/O, so the connection need not be up yet.
func New(cfg Config, nc *nats.Conn) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, fmt.Errorf("new producer: nil NATS connection")
	}
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("new producer: %w", err)
	}
	id, err := newID(cfg.Name)
	if err != nil {
		return nil, err
	}
	p := &Producer{
		cfg:       cfg,
		id:        id,
		subject:   streams.Subjects{Prefix: cfg.Prefix}.OwnedDelta(cfg.Node, cfg.Name, id),
		stream:    streams.Config{Prefix: cfg.Prefix}.DeltaStream(),
		nc:        nc,
		js:        js,
		families:  map[string]*family{},
		roundDone: make(chan struct{}),
		poke:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	p.log = cfg.Logger.With().Str("producer", id).Str("node", cfg.Node).Str("subject", p.subject).Logger()
	p.fl.p = p
	p.lastCut.Store(time.Now().UnixNano())
	p.loopCtx, p.abort = context.WithCancelCause(context.Background())
	go p.run()
	return p, nil
}

// newID is name, "-" and 8 random lowercase base32 characters (40 bits),
// a fresh id for each process incarnation.
func newID(name string) (string, error) {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new producer id: %w", err)
	}
	return name + "-" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:])), nil
}

// ID is the producer id: Config.Name plus the incarnation id. It is the
// last token of the subject, <prefix>.delta.<node>.<name>.<id>, whose
// <name> token is what a NATS credential may be allowed to publish under
// (docs/security.md), and the prefix of every message id.
func (p *Producer) ID() string { return p.id }

// Flush cuts everything recorded before the call and returns once JetStream
// has acknowledged all of it. When ctx ends first Flush returns its error,
// joined with the last failed publish attempt's when a batch is being
// retried (errors.Is(err, ErrStreamFull) when the delta stream is full);
// the deltas are not lost, the flush goroutine keeps publishing them.
func (p *Producer) Flush(ctx context.Context) error {
	select {
	case <-p.stop:
		return ErrClosed
	default:
	}
	p.mu.Lock()
	target := p.started + 1
	p.mu.Unlock()
	select {
	case p.poke <- struct{}{}:
	default: // a round is already requested; it starts after this point too
	}
	for {
		p.mu.Lock()
		completed, ch := p.completed, p.roundDone
		p.mu.Unlock()
		if completed >= target {
			return nil
		}
		select {
		case <-ch:
		case <-p.done:
			p.mu.Lock()
			completed = p.completed
			p.mu.Unlock()
			if completed >= target {
				return nil
			}
			return ErrClosed
		case <-ctx.Done():
			if perr := p.publishError(); perr != nil {
				return fmt.Errorf("flush: %w; the batch in flight is kept and retried, its last attempt failed: %w", ctx.Err(), perr)
			}
			return fmt.Errorf("flush: %w", ctx.Err())
		}
	}
}

// Close stops the flush loop after a final flush of everything recorded
// before the call, and waits for it. When ctx ends first the final flush
// is abandoned, its deltas are lost and Close returns ctx's error. Close is
// idempotent: later calls return the first one's result. Updates after
// Close are accepted and never sent.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { close(p.stop) })
	select {
	case <-p.done:
	case <-ctx.Done():
		p.abort(ctx.Err())
		<-p.done
	}
	return p.closeErr
}

// run is the flush loop: one round per tick or Flush, a final round on
// Close.
func (p *Producer) run() {
	defer close(p.done)
	defer p.abort(nil)
	t := time.NewTicker(p.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			if err := p.round(p.loopCtx); err != nil {
				p.closeErr = fmt.Errorf("close: %w", err)
			}
			return
		default:
		}
		select {
		case <-t.C:
		case <-p.poke:
		case <-p.stop:
			continue
		}
		if err := p.round(p.loopCtx); err != nil {
			// Only Close ends the loop context; report it there.
			p.closeErr = fmt.Errorf("close: %w", err)
			return
		}
	}
}

// round cuts the live deltas and publishes them until every message is
// acknowledged. It fails only when the loop context ends.
func (p *Producer) round(ctx context.Context) error {
	p.mu.Lock()
	p.started++
	r := p.started
	p.mu.Unlock()

	cut := time.Now()
	if err := p.fl.flush(ctx, cut); err != nil {
		return err
	}
	p.lastCut.Store(cut.UnixNano())

	p.mu.Lock()
	p.completed = r
	close(p.roundDone)
	p.roundDone = make(chan struct{})
	p.mu.Unlock()
	return nil
}

// reject counts an update ignored for its value; counted is false for
// harmless no-ops such as adding zero.
func (p *Producer) reject(counted bool) {
	if counted {
		p.rejected.Add(1)
	}
}
