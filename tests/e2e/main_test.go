package e2e_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that stopped nodes and closed producers leave no
// goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
