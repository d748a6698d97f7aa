package aggregate

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Update is one group of changes applied atomically with the marks. Build
// it with its methods; it is reusable after Reset.
type Update struct {
	// Expect is the stream mark the store must hold for the update to apply.
	Expect uint64
	// Mark is the stream mark after the update.
	Mark uint64

	producers map[string]uint64
	metas     map[string]Meta
	adds      map[string]float64
	intAdds   map[string]int64
	sets      map[string]float64
	rejected  map[string]int64
}

// NewUpdate returns an empty update.
func NewUpdate() *Update {
	return &Update{
		producers: map[string]uint64{},
		metas:     map[string]Meta{},
		adds:      map[string]float64{},
		intAdds:   map[string]int64{},
		sets:      map[string]float64{},
		rejected:  map[string]int64{},
	}
}

// Reset empties u for reuse.
func (u *Update) Reset() {
	u.Expect, u.Mark = 0, 0
	clear(u.producers)
	clear(u.metas)
	clear(u.adds)
	clear(u.intAdds)
	clear(u.sets)
	clear(u.rejected)
}

// Ops is the number of field writes u makes: a measure of its cost.
func (u *Update) Ops() int {
	return len(u.producers) + len(u.metas) + len(u.adds) + len(u.intAdds) + len(u.sets) + len(u.rejected)
}

// ProducerMark records producer's last applied batch sequence.
func (u *Update) ProducerMark(producer string, seq uint64) { u.producers[producer] = seq }

// Describe records a metric's metadata; the first description stored wins.
func (u *Update) Describe(name string, m Meta) {
	if _, ok := u.metas[name]; !ok {
		u.metas[name] = m
	}
}

// Add adds delta to a counter series or a histogram sum field.
func (u *Update) Add(field string, delta float64) { u.adds[field] += delta }

// AddInt adds delta to an integer field (a histogram bucket).
func (u *Update) AddInt(field string, delta int64) { u.intAdds[field] += delta }

// Set sets a gauge series; the last set of a field in an update wins.
func (u *Update) Set(field string, v float64) { u.sets[field] = v }

// Reject counts n rejected updates under reason.
func (u *Update) Reject(reason string, n int64) { u.rejected[reason] += n }

func appendPairsF(args []any, m map[string]float64) []any {
	args = append(args, len(m))
	for f, v := range m {
		args = append(args, f, strconv.FormatFloat(v, 'g', -1, 64))
	}
	return args
}

func (u *Update) args() []any {
	args := make([]any, 0, 8+2*u.Ops())
	args = append(args, strconv.FormatUint(u.Expect, 10), strconv.FormatUint(u.Mark, 10), nonce())
	args = append(args, len(u.producers))
	for p, s := range u.producers {
		args = append(args, p, strconv.FormatUint(s, 10))
	}
	args = append(args, len(u.metas))
	for n, m := range u.metas {
		b, _ := json.Marshal(m) // Meta always marshals
		args = append(args, n, string(b))
	}
	args = appendPairsF(args, u.adds)
	args = append(args, len(u.intAdds))
	for f, v := range u.intAdds {
		args = append(args, f, strconv.FormatInt(v, 10))
	}
	args = appendPairsF(args, u.sets)
	args = append(args, len(u.rejected))
	for r, n := range u.rejected {
		args = append(args, r, strconv.FormatInt(n, 10))
	}
	return args
}

// nonce returns a value no other apply or restore uses, for the guard
// field of apply.lua and restore.lua.
func nonce() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
