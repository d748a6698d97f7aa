package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
)

// maxSecretBytes bounds a secret file: a password, not whatever a wrong
// path points at.
const maxSecretBytes = 4096

// maxManagedSocket keeps the managed redis-server's socket in the data
// directory clear of the sun_path limit.
const maxManagedSocket = 100

// redisOptions returns the client options for --redis.url with the
// password and TLS settings of the other --redis.* settings, or an error
// naming the flag at fault. The password is in exactly one place: the
// URL, a file (read again for every new connection, so a rotated password
// needs no restart) or RedisPassword. No error repeats it.
func (c Config) redisOptions() (*redis.Options, error) {
	if err := checkRedisURL(c.RedisURL); err != nil {
		return nil, invalid("redis.url", redactURL(c.RedisURL), err.Error())
	}
	opts, err := redis.ParseURL(c.RedisURL)
	if err != nil { // checkRedisURL has parsed it already
		return nil, invalid("redis.url", redactURL(c.RedisURL), "does not parse")
	}
	var sources []string
	if opts.Password != "" {
		sources = append(sources, "the password in --redis.url")
	}
	if c.RedisPasswordFile != "" {
		sources = append(sources, "--redis.password-file")
	}
	if c.RedisPassword != "" {
		sources = append(sources, "JETMETRICS_REDIS_PASSWORD")
	}
	if len(sources) > 1 {
		return nil, fmt.Errorf("the Redis password is given by %s: give it once", strings.Join(sources, " and "))
	}
	switch {
	case c.RedisPassword != "":
		opts.Password = c.RedisPassword
	case c.RedisPasswordFile != "":
		file := c.RedisPasswordFile
		if _, err := readSecret(file); err != nil {
			return nil, invalid("redis.password-file", file, err.Error())
		}
		user := opts.Username
		opts.CredentialsProviderContext = func(context.Context) (string, string, error) {
			pw, err := readSecret(file)
			if err != nil {
				return "", "", fmt.Errorf("--redis.password-file %q: %w", file, err)
			}
			return user, pw, nil
		}
	}
	if err := c.redisTLS(opts); err != nil {
		return nil, err
	}
	return opts, nil
}

// redisPasswordSource names where the password of RedisURL comes from
// when not from the URL, for an error that says which one was refused.
func (c Config) redisPasswordSource() string {
	switch {
	case c.RedisPasswordFile != "":
		return fmt.Sprintf(" (password from --redis.password-file %q)", c.RedisPasswordFile)
	case c.RedisPassword != "":
		return " (password from JETMETRICS_REDIS_PASSWORD)"
	}
	return ""
}

// redisTLS applies the --redis.tls.* settings to opts, which have a TLS
// configuration exactly when the URL is rediss://.
func (c Config) redisTLS(opts *redis.Options) error {
	flags := []struct{ flag, value string }{
		{"redis.tls.ca-file", c.RedisTLSCAFile},
		{"redis.tls.cert-file", c.RedisTLSCertFile},
		{"redis.tls.key-file", c.RedisTLSKeyFile},
		{"redis.tls.server-name", c.RedisTLSServerName},
	}
	if opts.TLSConfig == nil {
		for _, f := range flags {
			if f.value != "" {
				return invalid(f.flag, f.value, "needs a rediss:// --redis.url")
			}
		}
		return nil
	}
	if c.RedisTLSServerName != "" {
		opts.TLSConfig.ServerName = c.RedisTLSServerName
	}
	if c.RedisTLSCAFile != "" {
		pem, err := os.ReadFile(c.RedisTLSCAFile)
		if err != nil {
			return invalid("redis.tls.ca-file", c.RedisTLSCAFile, unwrapPathErr(err).Error())
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return invalid("redis.tls.ca-file", c.RedisTLSCAFile, "holds no PEM certificate")
		}
		opts.TLSConfig.RootCAs = pool
	}
	switch cert, key := c.RedisTLSCertFile, c.RedisTLSKeyFile; {
	case cert == "" && key == "":
	case cert == "":
		return invalid("redis.tls.key-file", key, "needs --redis.tls.cert-file")
	case key == "":
		return invalid("redis.tls.cert-file", cert, "needs --redis.tls.key-file")
	default:
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			return invalid("redis.tls.cert-file", cert, fmt.Sprintf("with --redis.tls.key-file %q: %v", key, unwrapPathErr(err)))
		}
		// Read again at every handshake, so a renewed certificate needs
		// no restart.
		opts.TLSConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("--redis.tls.cert-file %q: %w", cert, err)
			}
			return &c, nil
		}
	}
	return nil
}

// checkManagedRedis refuses the client settings of --redis.url without
// one: the managed redis-server has a password and a socket of its own.
func (c Config) checkManagedRedis() error {
	for _, f := range []struct{ flag, value string }{
		{"redis.password-file", c.RedisPasswordFile},
		{"redis.tls.ca-file", c.RedisTLSCAFile},
		{"redis.tls.cert-file", c.RedisTLSCertFile},
		{"redis.tls.key-file", c.RedisTLSKeyFile},
		{"redis.tls.server-name", c.RedisTLSServerName},
	} {
		if f.value != "" {
			return invalid(f.flag, f.value, "is for the Redis of --redis.url; the managed redis-server has a random password and a private socket of its own")
		}
	}
	if c.RedisPassword != "" {
		return errors.New("JETMETRICS_REDIS_PASSWORD is set without --redis.url: the managed redis-server has a random password of its own")
	}
	return nil
}

// readSecret reads a password from file; one trailing line ending is not
// part of it.
func readSecret(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", unwrapPathErr(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return "", unwrapPathErr(err)
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("longer than %d bytes: not a password", maxSecretBytes)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", errors.New("is empty")
	}
	return string(b), nil
}

// unwrapPathErr drops the path an *os.PathError repeats: the messages
// name the file already.
func unwrapPathErr(err error) error {
	var perr *os.PathError
	if errors.As(err, &perr) {
		return perr.Err
	}
	return err
}

// managedRedis configures the redis-server a node starts when no
// --redis.url is given, with its files in dir. It is never reachable
// without authentication: the password is random for every start of the
// node and lives only in this process's memory, and it listens on a unix
// socket of mode 0700 only, in dir, or in a private directory under the
// system temporary directory when dir is too deep for a socket path.
func managedRedis(dir string, log zerolog.Logger) redisserver.Config {
	rc := redisserver.Config{Dir: dir, Password: rand.Text(), Logger: log}
	if sock := filepath.Join(dir, "redis.sock"); len(sock) <= maxManagedSocket {
		rc.Socket = sock
	} else {
		rc.TempSocket = true
	}
	return rc
}
