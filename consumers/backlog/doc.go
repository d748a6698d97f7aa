// Package backlog measures what waits in the delta stream: this node's
// backlog (the messages after the last one its aggregator applied, which
// grows while applies stall) and the deltas nobody will ever apply: those
// waiting in the delta stream for a node name that no live node consumes (a
// typo such as node-A for node-a, a node that is down or was removed), and
// those on subjects no aggregator's filter matches (a token too many or too
// few).
//
// A Scanner polls the delta stream's per-subject message counts on a
// drift-free ticker, compares the node tokens with this node and the live
// peers of the peer store, and exports the result as the gauge
// jetmetrics_orphan_deltas{node,reason}, logging each node name once when it
// appears, and this node's backlog as jetmetrics_delta_backlog_messages.
// Each scan reads at most one page of subject counts (the server sends up
// to 100,000 subjects); a stream holding more is reported as truncated. Run owns its goroutine and returns nil when its context ends.
package backlog
