// Package nativehistogram maps classic histogram bucket layouts onto the
// exponential buckets of Prometheus native histograms.
//
// A native histogram of schema s (-4 to 8) has the bucket boundaries
// 2^(k/2^s) for every integer k: bucket k holds the observations in
// (2^((k-1)/2^s), 2^(k/2^s)]. A classic layout whose finite bounds are
// such boundaries for one schema and consecutive k (Aligned) describes
// exactly the same buckets, so its counts can be served in both forms
// without losing anything but the shape of the bucket above the highest
// bound (see Layout). Bounds builds such layouts.
//
// Boundaries are computed as Prometheus does, a fraction in [0.5, 1)
// times a power of two, but the fractions come from square roots of 2
// rather than from Prometheus' table, so they may differ from Prometheus'
// by a few units in the last place; Aligned accepts bounds within a
// relative 1e-12 of a boundary, far closer than two boundaries of the
// finest schema (2^(1/256), about 0.27% apart) ever are.
//
// Every function is pure and safe for concurrent use.
package nativehistogram
