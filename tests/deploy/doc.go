// Package deploy holds the tests of deploy/: the compose file loaded as
// `docker compose config` loads it, the Kubernetes manifests decoded
// strictly into the Kubernetes and prometheus-operator API types, the
// Grafana dashboard's queries parsed as PromQL and checked against a live
// node's /metrics, and the systemd unit checked by systemd-analyze.
package deploy
