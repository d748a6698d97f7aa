package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/pkg/backoff"
)

// waitRedis waits until the Redis of --redis.url answers PING, at most
// RedisConnectTimeout: a Redis that never answers is a failed start that
// names the flag, not a node waiting forever.
func (n *Node) waitRedis(ctx context.Context, opts *redis.Options) error {
	timeout := n.cfg.RedisConnectTimeout
	deadline := time.Now().Add(timeout)
	// A probe client of its own: one connection, no retries, and reads
	// bounded by the context, so a server that accepts and never answers
	// costs no more than the time left.
	po := *opts
	po.PoolSize = 1
	po.MaxRetries = -1
	po.ContextTimeoutEnabled = true
	probe := redis.NewClient(&po)
	defer probe.Close()
	retry := backoff.Backoff{Min: 50 * time.Millisecond, Max: time.Second}
	var err error
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		perr := probe.Ping(pctx).Err()
		cancel()
		if perr == nil {
			return nil
		}
		if refused(perr) {
			// It answers, and says no: waiting changes nothing.
			return fmt.Errorf("--redis.url %s%s: %w", redactURL(n.cfg.RedisURL), n.cfg.redisPasswordSource(), perr)
		}
		// The attempt the deadline cut short says less than the one
		// before it ("connection refused").
		if err == nil || !errors.Is(perr, context.DeadlineExceeded) {
			err = perr
		}
		if ctx.Err() != nil {
			return fmt.Errorf("--redis.url %s: %w", redactURL(n.cfg.RedisURL), ctx.Err())
		}
		wait := min(retry.Next(), time.Until(deadline))
		if wait <= 0 {
			return fmt.Errorf("--redis.url %s: no answer within --redis.connect-timeout=%s: %w", redactURL(n.cfg.RedisURL), timeout, err)
		}
		if attempt == 1 {
			n.log.Info().Err(err).Str("url", redactURL(n.cfg.RedisURL)).Dur("timeout", timeout).Msg("waiting for redis")
		}
		if !backoff.Sleep(ctx, wait) {
			return fmt.Errorf("--redis.url %s: %w", redactURL(n.cfg.RedisURL), ctx.Err())
		}
	}
}

// refused reports whether a Redis error is an answer that a retry gets
// again: a wrong or missing password.
func refused(err error) bool {
	for _, p := range []string{"NOAUTH", "WRONGPASS", "ERR AUTH", "ERR invalid password", "ERR Client sent AUTH"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// connectNATS connects to --nats.url and waits, at most
// NATSConnectTimeout, until the connection is up. Later outages are
// ridden out by reconnecting; only the first connection is bounded.
func (n *Node) connectNATS(ctx context.Context, opts []nats.Option) (*nats.Conn, error) {
	timeout := n.cfg.NATSConnectTimeout
	deadline := time.Now().Add(timeout)
	connected := make(chan struct{}, 1)
	// The first attempt is made inside nats.Connect: bound it too.
	opts = append(opts, nats.Timeout(min(timeout, 2*time.Second)), nats.ConnectHandler(func(*nats.Conn) {
		select {
		case connected <- struct{}{}:
		default:
		}
	}))
	nc, err := nats.Connect(n.cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("--nats.url %s: %w%s", redactURL(n.cfg.NATSURL), err, natsTLSHint(err))
	}
	if nc.IsConnected() {
		return nc, n.checkJetStream(ctx, nc)
	}
	n.log.Info().Str("url", redactURL(n.cfg.NATSURL)).Dur("timeout", timeout).Msg("waiting for nats")
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-connected:
		return nc, n.checkJetStream(ctx, nc)
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("--nats.url %s: %w", redactURL(n.cfg.NATSURL), ctx.Err())
	case <-t.C:
		err := nc.LastError()
		nc.Close()
		if err == nil {
			err = nats.ErrNoServers
		}
		return nil, fmt.Errorf("--nats.url %s: not connected within --nats.connect-timeout=%s: %w%s", redactURL(n.cfg.NATSURL), timeout, err, natsTLSHint(err))
	}
}

// natsTLSHint says which flag a TLS error of the connection to --nats.url
// points at, or "" for any other error.
func natsTLSHint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return " (the server's certificate is signed by a CA this node does not trust: set --nats.tls.ca-file to that CA's certificate)"
	case errors.As(err, &hostname):
		return " (the server's certificate does not name the host of --nats.url: connect by a name or IP it holds)"
	case err != nil && (strings.Contains(err.Error(), "certificate required") || strings.Contains(err.Error(), "bad certificate") || strings.Contains(err.Error(), "unknown certificate authority")):
		return " (the server wants a client certificate its CA signed: set --nats.tls.cert-file and --nats.tls.key-file)"
	}
	return ""
}

// checkJetStream fails the start on a NATS without JetStream, where the
// streams could never be created; on any other error the provisioning
// that follows retries. nc is closed when it fails.
func (n *Node) checkJetStream(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = js.AccountInfo(actx)
		cancel()
	}
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		nc.Close()
		return fmt.Errorf("--nats.url %s: %w: jetmetrics needs JetStream (nats-server -js, or jetstream {} in its configuration)", redactURL(n.cfg.NATSURL), err)
	}
	return nil
}
