package backlog_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops the scanners it starts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
