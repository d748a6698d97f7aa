// Package harness starts the real dependencies tests run against, an
// embedded nats-server (alone or clustered) and a redis-server child, and
// registers their teardown with t.Cleanup.
//
// Every helper takes the test's testing.TB and fails the test rather than
// returning an error, and is safe to call from parallel tests: each call
// gets its own directories and ports. Servers are shut down in the
// reverse order they were started, before the test's temporary
// directories are removed.
package harness
