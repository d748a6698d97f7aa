// Package probes checks that a service answers, and how fast: an HTTP(S)
// request, a TCP connect, or a NATS request–reply, each a Prober whose
// Probe returns the time the service took to answer, or why it did not.
//
// A failure is an *Error with a short machine reason (Reason: timeout,
// refused, dns, tls, status, body, no_responders, …) and a one-line human
// message; ReasonOf extracts the reason from any error. A latency is
// measured for successes only: a failed probe has none, so a failure can
// never be mistaken for a slow answer.
//
// Probe's deadline comes from its context. Messages never show a URL (it
// may carry a token in its query) nor any credential.
//
// Concurrency: every Prober is safe for concurrent use, though the
// observer runtime never probes one target twice at once.
package probes
