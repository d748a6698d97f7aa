// Package fault holds the fault suite: tests that break the pipeline's
// surroundings on purpose (acknowledgements lost, retries past the
// broker's duplicate window, aggregators killed between the steps of an
// apply or racing each other, Redis killed, rolled back or wiped, NATS
// restarted, bad input) and then check every series exactly against a
// ledger of what each producer had acknowledged, timed out or never sent.
//
// Everything runs against a real embedded nats-server and real
// redis-server processes on loopback; nothing is mocked, and every wait is
// a bounded poll. docs/guarantees.md lists which test guards which part of
// the exactly-once mechanism.
package fault
