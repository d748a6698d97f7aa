package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// peerCollector exports every peer's freshness from the peer store.
type peerCollector struct {
	n                *Node
	up, age, version *prometheus.Desc
}

func newPeerCollector(n *Node) *peerCollector {
	return &peerCollector{
		n:       n,
		up:      prometheus.NewDesc("jetmetrics_peer_up", "1 for every node whose snapshot this node holds and that has not expired.", []string{"peer"}, nil),
		age:     prometheus.NewDesc("jetmetrics_peer_snapshot_age_seconds", "Age of the newest snapshot this node holds of each peer.", []string{"peer"}, nil),
		version: prometheus.NewDesc("jetmetrics_peer_snapshot_version", "Version (applied stream sequence) of the newest snapshot of each peer.", []string{"peer"}, nil),
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
	snaps, err := peers.List(ctx, false)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.up, err)
		return
	}
	now := time.Now()
	for _, s := range snaps {
		if s.Node == c.n.cfg.Name {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1, s.Node)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(s.Generated).Seconds(), s.Node)
		ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(s.Version), s.Node)
	}
}
