package deploy_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The nodes, servers and connections a test starts are stopped at its end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
