package redisserver

import (
	"context"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/backoff"
)

const (
	// minBackoff and maxBackoff bound the wait before restarting a child
	// that exited on its own.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// stableAfter is how long a child must have run for the backoff to
	// start again from minBackoff.
	stableAfter = 30 * time.Second
	// stopTimeout bounds the graceful stop when Supervise's ctx ends.
	stopTimeout = 10 * time.Second
)

// Supervise keeps the child running until ctx ends. When the child exits
// on its own, or through Kill, Supervise logs it and starts it again after
// a backoff that doubles from 100ms up to 5s. A child stopped with Stop is
// left stopped until Restart starts it again. When ctx ends, Supervise
// stops the child gracefully and returns nil; a stop that had to kill the
// child is logged.
func (s *Server) Supervise(ctx context.Context) error {
	retry := backoff.Backoff{Min: minBackoff, Max: maxBackoff}
	for {
		s.mu.Lock()
		p, stopped, started := s.proc, s.stopped, s.started
		s.mu.Unlock()

		if stopped {
			select {
			case <-ctx.Done():
				return nil
			case <-started:
				continue
			}
		}
		select {
		case <-ctx.Done():
			s.stopOnDone(ctx)
			return nil
		case <-p.exited:
		}
		if s.current() != p || s.isStopped() {
			continue // Restart or Stop got there first
		}

		if time.Since(p.started) > stableAfter {
			retry.Reset()
		}
		wait := retry.Next()
		s.log.Warn().Err(p.exitError()).Int("pid", p.pid()).Dur("backoff", wait).Msg("redis-server exited, restarting")
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
		if err := s.restartExited(ctx, p); err != nil {
			s.log.Error().Err(err).Msg("restart redis-server")
		}
	}
}

// restartExited starts a new child in place of p unless something else
// has started or stopped the server meanwhile.
func (s *Server) restartExited(ctx context.Context, p *process) error {
	s.ops.Lock()
	defer s.ops.Unlock()
	if s.current() != p || s.isStopped() {
		return nil
	}
	return s.start(ctx)
}

// stopOnDone stops the child after Supervise's ctx has ended.
func (s *Server) stopOnDone(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		s.log.Error().Err(err).Msg("stop supervised redis-server")
	}
}

func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}
