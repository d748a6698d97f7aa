package redisserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

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
	// Empty means listen on 127.0.0.1 instead, unless TempSocket is set.
	// At most 103 bytes. The socket is made mode 0700 (unixsocketperm), so
	// other users cannot connect whatever its directory's mode.
	Socket string
	// TempSocket, when Socket is empty, listens on a unix socket in a new
	// directory of mode 0700 under os.TempDir instead of on TCP: a short
	// path for a Dir too deep for one. The directory is removed when the
	// server stops and made again, only if still ours, when it restarts.
	TempSocket bool
	// Port is the TCP port when neither Socket nor TempSocket is set. 0
	// picks a free one.
	Port int
	// Password is the default user's password (requirepass), so a client
	// must AUTH before any other command. redis-server reads it from its
	// standard input, never from its command line, which every user of
	// the machine can read; Options carries it and URL does not. On TCP
	// the readiness probe sends it to whatever holds the port, so a
	// socket keeps it private where TCP cannot. Empty leaves the server
	// open to whoever can reach its socket or port, which only tests
	// should do.
	Password string
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
		c.TempSocket = false
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
	// Only redis-server and its owner have any business reading the AOF.
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if c.TempSocket {
		// MkdirTemp makes the directory mode 0700 under a name nobody
		// could have made beforehand.
		dir, err := os.MkdirTemp("", "jetmetrics-redis-")
		if err != nil {
			return c, fmt.Errorf("config: socket directory: %w", err)
		}
		c.Socket, c.Port = filepath.Join(dir, "redis.sock"), 0
		if len(c.Socket) > maxSocketPath {
			os.Remove(dir)
			return c, fmt.Errorf("config: socket path %q is %d bytes, longer than %d: set TMPDIR to a shorter directory", c.Socket, len(c.Socket), maxSocketPath)
		}
	}
	return c, nil
}

// socketDir is the private directory of a TempSocket, "" otherwise.
func (c Config) socketDir() string {
	if !c.TempSocket {
		return ""
	}
	return filepath.Dir(c.Socket)
}

// makeSocketDir makes the TempSocket directory again after a stop removed
// it, or checks that the one left by a crashed child is still ours: a
// directory (not a symbolic link) owned by this user with mode 0700. A
// name under a shared /tmp could have been taken meanwhile by someone
// hoping the child would listen where they can reach it.
func (c Config) makeSocketDir() error {
	dir := c.socketDir()
	if dir == "" {
		return nil
	}
	err := os.Mkdir(dir, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() || st.Mode().Perm() != 0o700 || !ownedBySelf(st) {
		return fmt.Errorf("socket directory %s: not a directory of mode 0700 owned by this user", dir)
	}
	return nil
}

// args returns the redis-server command line for c, on port when c.Socket
// is empty. With a password, "-" makes redis-server read the rest of its
// configuration, stdin(), from its standard input.
func (c Config) args(port int) []string {
	var args []string
	if c.Password != "" {
		args = append(args, "-")
	}
	args = append(args,
		"--dir", c.Dir,
		"--daemonize", "no",
		"--appendonly", "yes",
		"--appendfsync", c.AppendFsync,
		"--save", "",
		// Without a password, protected mode still refuses any client
		// that is not on loopback or the socket.
		"--protected-mode", "yes",
		"--bind", "127.0.0.1",
		"--logfile", "",
	)
	if c.Socket != "" {
		args = append(args, "--port", "0", "--unixsocket", c.Socket, "--unixsocketperm", "700")
	} else {
		args = append(args, "--port", fmt.Sprint(port))
	}
	return append(args, c.ExtraArgs...)
}

// stdin returns the configuration redis-server reads from its standard
// input: the password, every byte escaped, so no byte of it can end the
// directive or start another.
func (c Config) stdin() string {
	if c.Password == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(`requirepass "`)
	for i := 0; i < len(c.Password); i++ {
		fmt.Fprintf(&b, `\x%02x`, c.Password[i])
	}
	b.WriteString("\"\n")
	return b.String()
}

// ownedBySelf reports whether st belongs to this process's user.
func ownedBySelf(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Getuid()
}
