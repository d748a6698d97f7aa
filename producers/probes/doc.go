// Package probes is the service-probe observer: a Poller for the observer
// runtime (producers/observer) that runs each service's Prober (an HTTP,
// TCP or NATS request–reply check from pkg/probes) and publishes the
// result, a latency or a failure with its reason, to the observation
// stream on <prefix>.obs.probe.<service token>.
//
// Each result carries the probe's scheduled instant as observed_at, the
// probing node and its lease revision (the fencing token), and is
// published with the message id "<service token>:<instant>", so the stream
// keeps at most one result per service and instant even if two nodes ever
// probed the same service, or a publish is retried.
//
// Poll is safe for concurrent use; the observer calls it for many
// services at once, never twice at once for one service.
package probes
