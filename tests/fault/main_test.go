package fault_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it starts: servers, aggregators, producers, the
// link and the scrapers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
