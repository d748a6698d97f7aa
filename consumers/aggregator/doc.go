// Package aggregator applies one node's delta batches from JetStream to the
// node's aggregate in Redis, exactly once.
//
// The aggregator's position lives in Redis with the state it describes: the
// last applied stream sequence of the node and the last applied batch
// sequence of every producer are written by the same atomic transaction as
// the updates. On start, and after any error, it re-reads that position and
// resumes the stream from the next sequence with an ordered consumer. A
// message at or below a producer's batch mark is a duplicate (a producer
// retry the broker's dedup window did not catch) and changes nothing. Every
// apply is a compare-and-set on the stream mark, so two aggregators racing
// on the same node cannot both apply a message.
//
// The aggregator holds the aggregate in memory, computes every new value
// there and writes it to Redis as an absolute value. Many messages are
// applied per Redis call: deltas of the same series are summed (counters,
// histograms) or superseded (gauges, last write in stream order wins)
// before the call, and the next group is built while Redis applies the
// last. Run owns every goroutine it starts and returns when its context
// ends.
package aggregator
