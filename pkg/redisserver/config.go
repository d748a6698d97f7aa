package redisserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/rs/zerolog"
)

// maxSocketPath is the longest unix socket path accepted: sun_path holds
// 104 bytes on BSDs and 108 on Linux, including the terminating NUL.
const maxSocketPath = 103

// Config describes one redis-server child. The zero value of every field
// except Dir is usable.
type Config struct {
	// Dir is the working directory holding the AOF and RDB files. It is
	// created if missing. Required.
	Dir string
	// Socket is the unix socket path to listen on, with TCP disabled.
	// Empty means listen on 127.0.0.1 instead. At most 103 bytes.
	Socket string
	// Port is the TCP port when Socket is empty. 0 picks a free one.
	Port int
	// AppendFsync is the AOF fsync policy: "everysec" (default), "always"
	// or "no".
	AppendFsync string
	// Binary is the redis-server executable, a path or a name looked up on
	// PATH. Default "redis-server".
	Binary string
	// Logger receives the child's stdout and stderr at debug level and the
	// supervisor's notices. The zero value discards them.
	Logger zerolog.Logger
	// ExtraArgs are more redis-server config directives, such as
	// "--maxmemory", "1gb". They come last, so they override the defaults.
	ExtraArgs []string
}

// resolve returns a copy of c with defaults applied, paths made absolute
// and the binary found, or an error if c cannot describe a server.
func (c Config) resolve() (Config, error) {
	if c.Dir == "" {
		return c, errors.New("config: dir is required")
	}
	switch c.AppendFsync {
	case "":
		c.AppendFsync = "everysec"
	case "everysec", "always", "no":
	default:
		return c, fmt.Errorf("config: appendfsync %q: want everysec, always or no", c.AppendFsync)
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, fmt.Errorf("config: port %d out of range", c.Port)
	}
	var err error
	// redis-server changes into Dir before it binds, so a relative socket
	// path would land inside Dir.
	if c.Dir, err = filepath.Abs(c.Dir); err != nil {
		return c, fmt.Errorf("config: dir: %w", err)
	}
	if c.Socket != "" {
		if c.Socket, err = filepath.Abs(c.Socket); err != nil {
			return c, fmt.Errorf("config: socket: %w", err)
		}
		if len(c.Socket) > maxSocketPath {
			return c, fmt.Errorf("config: socket path %q is %d bytes, longer than %d", c.Socket, len(c.Socket), maxSocketPath)
		}
		c.Port = 0
	}
	if c.Binary == "" {
		c.Binary = "redis-server"
	}
	bin, err := exec.LookPath(c.Binary)
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return c, fmt.Errorf("%s: %w", c.Binary, ErrNotInstalled)
	}
	if err != nil {
		return c, fmt.Errorf("config: binary: %w", err)
	}
	c.Binary = bin
	c.ExtraArgs = append([]string(nil), c.ExtraArgs...)
	if err := os.MkdirAll(c.Dir, 0o750); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// args returns the redis-server command line for c, on port when c.Socket
// is empty.
func (c Config) args(port int) []string {
	args := []string{
		"--dir", c.Dir,
		"--daemonize", "no",
		"--appendonly", "yes",
		"--appendfsync", c.AppendFsync,
		"--save", "",
		"--protected-mode", "no",
		"--bind", "127.0.0.1",
		"--logfile", "",
	}
	if c.Socket != "" {
		args = append(args, "--port", "0", "--unixsocket", c.Socket, "--unixsocketperm", "700")
	} else {
		args = append(args, "--port", fmt.Sprint(port))
	}
	return append(args, c.ExtraArgs...)
}
