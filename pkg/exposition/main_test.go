package exposition_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Handler renders on goroutines of its own; none outlives a request.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
