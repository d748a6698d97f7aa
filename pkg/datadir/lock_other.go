//go:build !unix

package datadir

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// lock is a no-op where flock(2) does not exist: nodes run on Linux, and
// elsewhere only the owner record guards the directory.
func lock(*os.File) error { return nil }

func unlock(*os.File) error { return nil }
