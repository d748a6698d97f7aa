package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// Demo nodes show different numbers: the demo producer is seeded from the
// node name. Each node ticks once, at start (the next tick is an hour
// away), so with one seed for all the two would show the same values.
func TestDemoNodesDiffer(t *testing.T) {
	demo := func(name string) map[string]float64 {
		rn := harness.StartNode(t, node.Config{Name: name, Demo: true, DemoInterval: time.Hour})
		var got map[string]float64
		harness.Eventually(t, converge, func() error {
			fams, err := harness.Scrape(rn.URL + "/metrics")
			if err != nil {
				return err
			}
			got = map[string]float64{}
			for k, v := range harness.Samples(fams) {
				if strings.HasPrefix(k, "demo_") {
					got[k] = v
				}
			}
			// Every kind is there: the first tick is applied.
			for _, m := range []string{"demo_http_requests_total", "demo_cpu_seconds_total", "demo_queue_jobs", "demo_room_temperature_celsius", "demo_request_duration_seconds_count"} {
				found := false
				for k := range got {
					found = found || strings.HasPrefix(k, m)
				}
				if !found {
					return fmt.Errorf("%s has no %s yet", name, m)
				}
			}
			return nil
		})
		rn.Stop(t)
		return got
	}
	a, b := demo("demo-a"), demo("demo-b")
	same := 0
	for k, v := range a {
		if b[k] == v {
			same++
		}
	}
	// Some series agree by chance (a 500 count of 0 or 1); most must not.
	if same*2 > len(a) {
		t.Errorf("%d of %d demo series have the same value on demo-a and demo-b, want most to differ", same, len(a))
	}
	if v := a["demo_cpu_seconds_total"]; v == b["demo_cpu_seconds_total"] {
		t.Errorf("demo_cpu_seconds_total is %v on both nodes", v)
	}
}
