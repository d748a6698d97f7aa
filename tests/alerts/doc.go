// Package alerts holds the test that makes every alert of
// deploy/prometheus/alerts.yml fire from real nodes' output, evaluated by
// Prometheus' own rule engine through `promtool test rules`.
package alerts
