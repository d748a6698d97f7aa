// Package cluster holds the cluster tests: three `jetmetrics node`
// processes whose embedded NATS servers form a cluster over loopback
// routes, each with its own redis-server (or one shared), checked through
// their /metrics and /metrics/cluster endpoints.
package cluster
