package observer

import (
	"fmt"
	"slices"
	"testing"
)

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// The assignment is a function of the sets (not their order), gives no node
// more than ceil(targets/nodes), and a node leaving moves its own targets
// and few others.
func TestAssign(t *testing.T) {
	for _, tc := range []struct{ targets, nodes int }{{30, 3}, {30, 2}, {1000, 3}, {7, 5}, {3, 5}, {1, 1}} {
		targets, nodes := names("vol-", tc.targets), names("n", tc.nodes)
		a := assign(targets, nodes)
		rev := slices.Clone(nodes)
		slices.Reverse(rev)
		shuffled := slices.Clone(targets)
		slices.Reverse(shuffled)
		b := assign(shuffled, rev)
		limit := (tc.targets + tc.nodes - 1) / tc.nodes
		load := map[string]int{}
		for _, target := range targets {
			if a[target] != b[target] {
				t.Errorf("%d/%d: %s on %s or %s depending on order", tc.targets, tc.nodes, target, a[target], b[target])
			}
			load[a[target]]++
		}
		for n, l := range load {
			if l > limit {
				t.Errorf("%d/%d: %s gets %d targets, more than %d", tc.targets, tc.nodes, n, l, limit)
			}
		}
		if tc.nodes < 2 || tc.targets < 30 {
			continue
		}
		after := assign(targets, nodes[1:])
		moved := 0
		for _, target := range targets {
			if a[target] != nodes[0] && after[target] != a[target] {
				moved++
			}
		}
		// Capacity grows from ceil(t/n) to ceil(t/(n-1)), so the survivors'
		// targets mostly stay; allow a fifth of them to move.
		if stay := tc.targets - load[nodes[0]]; moved > stay/5 {
			t.Errorf("%d/%d: %s leaving moved %d of the other nodes' %d targets", tc.targets, tc.nodes, nodes[0], moved, stay)
		}
	}
}
