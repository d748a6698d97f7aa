package node

// SetStatusMaxRows sets how many volumes and services the status page
// lists, until the returned function restores it. Call it before starting
// a node, and restore after stopping it.
func SetStatusMaxRows(n int) (restore func()) {
	old := statusMaxRows
	statusMaxRows = n
	return func() { statusMaxRows = old }
}
