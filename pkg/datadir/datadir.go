package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The files a claimed directory holds.
const (
	// LockFile is locked while a node runs on the directory; it names the
	// holder.
	LockFile = "LOCK"
	// NodeFile names the node the directory belongs to.
	NodeFile = "NODE"
)

// ErrInUse reports a directory another process holds.
var ErrInUse = errors.New("data directory in use")

// ErrOtherNode reports a directory that belongs to another node.
var ErrOtherNode = errors.New("data directory belongs to another node")

// Dir is a claimed data directory.
type Dir struct {
	Path string
	lock *os.File
}

// Claim creates dir if needed, locks it and checks that it belongs to
// node. A directory holding no record yet (new, or written before records
// existed) becomes node's. One that belongs to another node is refused
// with ErrOtherNode unless adopt is set, in which case it becomes node's.
// A directory another process holds is refused with ErrInUse, naming the
// holder.
func Claim(dir, node string, adopt bool) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := lock(f); err != nil {
		holder, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("data dir %s: %w by %s; two nodes cannot share one data directory", dir, ErrInUse, describe(holder))
		}
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	d := &Dir{Path: dir, lock: f}
	if err := d.checkOwner(node, adopt); err != nil {
		d.Close()
		return nil, err
	}
	holder := fmt.Sprintf("node %s, pid %d, since %s\n", node, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(holder), 0)
	}
	return d, nil
}

// describe names a lock's holder from what it wrote into the lock file.
func describe(holder []byte) string {
	if s := strings.TrimSpace(string(holder)); s != "" {
		return s
	}
	return "another process"
}

func (d *Dir) checkOwner(node string, adopt bool) error {
	path := filepath.Join(d.Path, NodeFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("data dir: %w", err)
	default:
		owner := strings.TrimSpace(string(b))
		if owner == node {
			return nil
		}
		if owner != "" && !adopt {
			return fmt.Errorf("data dir %s: %w %q, not %q: its streams, Redis files and marks are %s's (start it as --node.name=%s, or take it over with --data.adopt)",
				d.Path, ErrOtherNode, owner, node, owner, owner)
		}
	}
	if err := os.WriteFile(path, []byte(node+"\n"), 0o644); err != nil {
		return fmt.Errorf("data dir: record owner: %w", err)
	}
	return nil
}

// Close releases the directory.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := unlock(d.lock)
	if cerr := d.lock.Close(); err == nil {
		err = cerr
	}
	d.lock = nil
	return err
}
