package exposition

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// Loader loads one node's aggregate.
type Loader interface {
	Load(ctx context.Context) (*aggregate.State, error)
}

// NodeGatherer gathers one node's aggregate without a node label: what
// /metrics serves, so Prometheus scraping each node sees no duplicates.
type NodeGatherer struct {
	loader  Loader
	timeout time.Duration
}

var _ prometheus.Gatherer = (*NodeGatherer)(nil)

// NewNodeGatherer returns a gatherer over loader; each Gather reads with
// the given timeout (default 10 s).
func NewNodeGatherer(loader Loader, timeout time.Duration) *NodeGatherer {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &NodeGatherer{loader: loader, timeout: timeout}
}

// Gather implements prometheus.Gatherer.
func (g *NodeGatherer) Gather() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	st, err := g.loader.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("gather aggregate: %w", err)
	}
	return Families([]*aggregate.State{st}, false), nil
}
