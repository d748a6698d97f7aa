package aggregate

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Update is one group of writes applied atomically with the stream mark.
// Every write is absolute: the caller holds the aggregate's current values
// and writes the new ones, so an update applied twice (a replayed transaction)
// changes nothing the second time. Build it with its methods; it is
// reusable after Reset, and each field should be written once.
type Update struct {
	// Expect is the stream mark the store must hold for the update to apply.
	Expect uint64
	// Mark is the stream mark after the update.
	Mark uint64
	// Incarnation is the delta stream incarnation the store must hold too
	// (Marks.Incarnation): an aggregator reading a stream that was
	// replaced never writes over the aggregate of the new one.
	Incarnation uint64

	// sections hold field/value pairs per hash.
	sections [4][]any
	// forget are the mark-hash fields of the producers forgotten.
	forget []string
	// buf backs the formatted fields and values of the pairs. Slices of an
	// earlier backing array stay valid when it grows.
	buf []byte
}

// Sections of Update: the hash each writes.
const (
	secMark = iota
	secSeries
	secMeta
	secRejected
)

// NewUpdate returns an empty update.
func NewUpdate() *Update { return &Update{} }

// Reset empties u for reuse.
func (u *Update) Reset() {
	u.Expect, u.Mark, u.Incarnation = 0, 0, 0
	for i := range u.sections {
		clear(u.sections[i])
		u.sections[i] = u.sections[i][:0]
	}
	clear(u.forget)
	u.forget = u.forget[:0]
	u.buf = u.buf[:0]
}

// Ops is the number of field writes u makes: a measure of its cost.
func (u *Update) Ops() int {
	n := len(u.forget)
	for _, s := range u.sections {
		n += len(s) / 2
	}
	return n
}

// bytes returns what was appended to u.buf since start, as its own slice.
func (u *Update) bytes(start int) []byte { return u.buf[start:len(u.buf):len(u.buf)] }

func (u *Update) pair(sec int, field, value any) {
	u.sections[sec] = append(u.sections[sec], field, value)
}

func (u *Update) float(v float64) []byte {
	start := len(u.buf)
	u.buf = strconv.AppendFloat(u.buf, v, 'g', -1, 64)
	return u.bytes(start)
}

func (u *Update) uint(v uint64) []byte {
	start := len(u.buf)
	u.buf = strconv.AppendUint(u.buf, v, 10)
	return u.bytes(start)
}

// ProducerMark records producer's last applied batch sequence.
func (u *Update) ProducerMark(producer string, seq uint64) {
	u.pair(secMark, producerFieldPrefix+producer, u.uint(seq))
}

// ProducerApplied records the stream time (Unix ms) of the message that
// last moved producer's batch mark (Marks.Applied).
func (u *Update) ProducerApplied(producer string, ms uint64) {
	u.pair(secMark, appliedFieldPrefix+producer, u.uint(ms))
}

// Clock records the stream time (Unix ms) of the last message applied
// (Marks.Clock).
func (u *Update) Clock(ms uint64) { u.pair(secMark, clockField, u.uint(ms)) }

// ForgetProducer deletes producer's batch mark and its time, in the same
// atomic step as the rest of u: the aggregator prunes the marks of
// producers idle beyond the replay horizon.
func (u *Update) ForgetProducer(producer string) {
	u.forget = append(u.forget, producerFieldPrefix+producer, appliedFieldPrefix+producer)
}

// Describe records a metric's metadata.
func (u *Update) Describe(name string, m Meta) {
	b, _ := json.Marshal(m) // Meta always marshals
	u.pair(secMeta, name, b)
}

// SetValue sets a counter's total or a gauge's value.
func (u *Update) SetValue(key string, v float64) { u.pair(secSeries, key, u.float(v)) }

// SetSum sets a histogram series' sum of observations.
func (u *Update) SetSum(key string, v float64) {
	start := len(u.buf)
	u.buf = append(append(u.buf, key...), sumSuffix...)
	u.pair(secSeries, u.bytes(start), u.float(v))
}

// SetBucket sets the count of bucket i (not cumulative) of a histogram
// series.
func (u *Update) SetBucket(key string, i int, n uint64) {
	start := len(u.buf)
	u.buf = AppendBucketField(u.buf, key, i)
	u.pair(secSeries, u.bytes(start), u.uint(n))
}

// SetRejected sets the count of updates rejected for reason.
func (u *Update) SetRejected(reason string, n uint64) { u.pair(secRejected, reason, u.uint(n)) }

// nonce returns a value no other apply or restore uses, for their guard
// fields.
func nonce() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
