package node

import (
	"fmt"
	"syscall"
)

// Bounds derived for the streams of the embedded server when
// --streams.delta-max-bytes or --streams.dlq-max-bytes is 0: a fraction of
// the data directory's free space at start, between a floor and a cap
// (docs/operations.md, "Stream bounds").
const (
	deltaBoundShare                      = 4 // a quarter of the free space
	deltaBoundFloor, deltaBoundCap int64 = 64 << 20, 64 << 30
	dlqBoundShare                        = 50 // a fiftieth
	dlqBoundFloor, dlqBoundCap     int64 = 16 << 20, 1 << 30
)

// derivedBound is share of free bytes, within [floor, cap].
func derivedBound(free uint64, share, floor, cap int64) int64 {
	b := int64(min(free/uint64(share), uint64(cap)))
	return max(b, floor)
}

// freeBytes is the space left to unprivileged users on dir's file system.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of --data.dir %q: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// boundStreams sets the streams' byte bounds left at 0 (derive): from
// the free space of dir for the embedded server, unlimited with a
// warning for an external NATS, whose disk this node cannot see. A derived
// bound only bounds a stream this node creates: one that exists keeps its
// own (streams.Config.DeltaMaxBytesDerived).
func (n *Node) boundStreams(dir string, embedded bool) error {
	s := &n.cfg.Streams
	if s.DeltaMaxBytes != 0 && s.DeadLetterMaxBytes != 0 {
		return nil
	}
	s.DeltaMaxBytesDerived, s.DeadLetterMaxBytesDerived = s.DeltaMaxBytes == 0, s.DeadLetterMaxBytes == 0
	if !embedded {
		if s.DeltaMaxBytes == 0 {
			n.log.Warn().Msg("--streams.delta-max-bytes unset with --nats.url: the delta stream is bounded only by the NATS server's limits; set it to what that server's disk can hold")
			s.DeltaMaxBytes = -1
		}
		if s.DeadLetterMaxBytes == 0 {
			s.DeadLetterMaxBytes = -1
		}
		return nil
	}
	free, err := freeBytes(dir)
	if err != nil {
		return err
	}
	if s.DeltaMaxBytes == 0 {
		s.DeltaMaxBytes = derivedBound(free, deltaBoundShare, deltaBoundFloor, deltaBoundCap)
	}
	if s.DeadLetterMaxBytes == 0 {
		s.DeadLetterMaxBytes = derivedBound(free, dlqBoundShare, dlqBoundFloor, dlqBoundCap)
	}
	n.log.Info().Uint64("free_bytes", free).Int64("delta_max_bytes", s.DeltaMaxBytes).Int64("dlq_max_bytes", s.DeadLetterMaxBytes).Msg("stream byte bounds derived from the data dir's free space")
	return nil
}
