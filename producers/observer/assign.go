package observer

import (
	"hash/fnv"
	"slices"
)

// mix is a 64-bit finaliser (splitmix64's): FNV-1a alone spreads short,
// similar strings poorly in the high bits.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

func hash(parts ...string) uint64 {
	f := fnv.New64a()
	for _, p := range parts {
		f.Write([]byte(p))
		f.Write([]byte{0})
	}
	return mix(f.Sum64())
}

// assign decides which node tries first to lead each target: rendezvous
// (highest random weight) hashing of target × node, bounded so that no
// node gets more than ceil(targets/nodes). Targets are placed in the
// order of their own hash, each on its highest-ranked node with room.
// Every node computes the same answer from the same targets and live
// nodes, and a change of the live set moves few targets: mostly those of
// the node that came or went.
func assign(targets, nodes []string) map[string]string {
	out := make(map[string]string, len(targets))
	if len(nodes) == 0 {
		return out
	}
	nodes = slices.Clone(nodes)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	capacity := (len(targets) + len(nodes) - 1) / len(nodes)

	order := slices.Clone(targets)
	th := make(map[string]uint64, len(order))
	for _, t := range order {
		th[t] = hash(t)
	}
	slices.SortFunc(order, func(a, b string) int {
		if th[a] != th[b] {
			if th[a] < th[b] {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})

	load := make(map[string]int, len(nodes))
	ranked := make([]string, len(nodes))
	score := make(map[string]uint64, len(nodes))
	for _, t := range order {
		copy(ranked, nodes)
		for _, n := range nodes {
			score[n] = hash(t, n)
		}
		slices.SortStableFunc(ranked, func(a, b string) int {
			switch {
			case score[a] > score[b]:
				return -1
			case score[a] < score[b]:
				return 1
			}
			return 0
		})
		for _, n := range ranked {
			if load[n] < capacity {
				out[t] = n
				load[n]++
				break
			}
		}
	}
	return out
}
