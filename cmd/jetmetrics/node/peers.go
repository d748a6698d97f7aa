package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
)

// peerCollector exports every peer's freshness from the peer store: a peer
// whose snapshot expired stays, at up 0 with a growing age, until it is
// removed on purpose (a graceful stop or an operator's forget) or
// forgotten after --cluster.peer-forget-after.
type peerCollector struct {
	n                *Node
	up, age, version *prometheus.Desc
}

func newPeerCollector(n *Node) *peerCollector {
	return &peerCollector{
		n:       n,
		up:      prometheus.NewDesc("jetmetrics_peer_up", "1 for every peer whose snapshot this node holds and that has not expired, 0 for a peer whose last snapshot expired and that was neither removed nor forgotten.", []string{"peer"}, nil),
		age:     prometheus.NewDesc("jetmetrics_peer_snapshot_age_seconds", "Age of the newest snapshot this node has seen of each peer, growing once the peer stops publishing.", []string{"peer"}, nil),
		version: prometheus.NewDesc("jetmetrics_peer_snapshot_version", "Version (applied stream sequence) of the newest snapshot this node has seen of each peer.", []string{"peer"}, nil),
	}
}

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.age
	ch <- c.version
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	peers := c.n.peers.Load()
	if peers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	known, err := peers.Known(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.up, err)
		return
	}
	now := time.Now()
	for _, p := range known {
		if p.Node == c.n.cfg.Name || p.Removed {
			continue
		}
		up := 0.0
		if p.Live {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, p.Node)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(p.Generated).Seconds(), p.Node)
		ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(p.Version), p.Node)
	}
}

// appliedBy reports the aggregator's applied mark to the delta scan once
// the aggregator has loaded it (it is consuming, or has applied since).
func appliedBy(a *aggregator.Aggregator) func() (uint64, bool) {
	return func() (uint64, bool) {
		seq := a.Mark()
		return seq, seq > 0 || a.Ready()
	}
}
