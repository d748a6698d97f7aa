// Package observer is the runtime of jetmetrics' observers (storage
// volumes, service probes): it polls a set of targets on a drift-free
// schedule, and makes sure exactly one node of a cluster polls each target
// at a time.
//
// Two components, each with Run(ctx) error:
//
//   - Observer schedules the polls. Target t is due at every instant
//     k·Interval + Phase(t): a ticker per target whose instants come from
//     the clock, never from when the last poll ended, so the period never
//     grows by the work's duration, and the phase spreads the targets over
//     the interval. Each poll runs in its own goroutine with a deadline of
//     its instant plus Timeout, under a bound of MaxConcurrent polls at
//     once; an error, a timeout or a panic is recorded for that target
//     (Status) and counted, and touches nothing else.
//   - Leases decides which targets this node may poll: a lease per target
//     in the NATS KV bucket streams.ProvisionLeases makes
//     (jetmetrics_leases), written with compare-and-set on the key's
//     revision (Create to acquire, Update with the last revision to renew,
//     Delete with the last revision to hand over or release), expiring
//     with the bucket's TTL. Targets are assigned to the live nodes (each
//     node renews a key of its own) by bounded-load rendezvous hashing, so
//     with N nodes none leads more than ceil(targets/N); a node that dies
//     stops renewing, its leases expire after one TTL and the nodes they
//     are now assigned to take them in their next round. The lease's
//     revision travels with each poll as the fencing token.
//
// An Observer asks its Elector (Leases, or Static for a node alone) at
// each instant whether it leads the target. Leases grants a lease only
// until three quarters of a TTL after its last successful write was sent,
// so a node cut off from NATS stops polling before the bucket can expire
// the lease and another node take it.
//
// A configuration reload changes the targets in place: Leases.SetTargets
// keeps the leases of the targets that stay and releases the removed
// ones at once, Observer.Update starts and stops loops per target and
// keeps the others' schedules. A lease bucket found gone is made again
// through LeaseConfig.Provision once it has been gone a TTL: the bucket's,
// or LeaseConfig.TTL when it was gone already when Run started.
//
// Concurrency: Observer.Status, Observer.Update, Leases.Lease,
// Leases.Leaders and Leases.SetTargets are safe to call from any
// goroutine while Run runs. Poll is called from many
// goroutines at once, at most once at a time per target.
package observer
