// Package volumecache is the cache writer every node runs: it reads the
// volume results of the observation stream and keeps the newest per volume
// in the node's Redis (pkg/obscache), each entry expiring the cache TTL
// after its observation time.
//
// It reads with an ordered consumer that starts from the last result of
// each volume and follows new ones. On any error (Redis down, NATS gone)
// it drops the consumer, backs off and starts again from the last result
// of each volume: since an older or equal result never replaces a newer
// one, and an expired one is not written, a replay changes nothing.
// Results that do not decode are counted and skipped.
//
// Run owns one goroutine; Ready is safe to call from any goroutine. A
// Collector's Collect and SetVolumes are safe to call concurrently.
package volumecache
