package natsauth

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// ClientOptions are a NATS client's credentials and TLS, each secret read
// from a file (or given as a value taken from the environment), never from
// a command line. At most one of CredsFile, NkeyFile, User and TokenFile is
// set; TLS combines with any of them.
type ClientOptions struct {
	// CredsFile is a JWT credentials file (nsc generate creds), for a NATS
	// with decentralised JWT authentication.
	CredsFile string
	// NkeyFile holds an nkey seed (SU…).
	NkeyFile string
	// User is a user name; its password is Password or, if that is empty,
	// the content of PasswordFile (a trailing newline is ignored).
	User, Password, PasswordFile string
	// TokenFile holds a token.
	TokenFile string
	// TLSCAFile verifies the server's certificate (default: the system's
	// CAs); TLSCertFile and TLSKeyFile are a client certificate.
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// InboxUser, when set, makes replies arrive on _INBOX.<InboxUser>: a
	// producer credential may subscribe to nothing else
	// (streams.InboxPrefix). Default User.
	InboxUser string
}

// NATSOptions returns the nats.Connect options of o. Errors name the file
// and never quote a secret.
func (o ClientOptions) NATSOptions() ([]nats.Option, error) {
	var opts []nats.Option
	n := 0
	for _, s := range []string{o.CredsFile, o.NkeyFile, o.User, o.TokenFile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("choose one of a credentials file, an nkey seed file, a user and password, or a token file")
	}
	switch {
	case o.CredsFile != "":
		if _, err := os.Stat(o.CredsFile); err != nil {
			return nil, fmt.Errorf("credentials file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	case o.NkeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: not a readable seed (SU…)", o.NkeyFile)
		}
		opts = append(opts, opt)
	case o.User != "":
		pw := o.Password
		if pw == "" && o.PasswordFile != "" {
			b, err := readSecret(o.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("password file: %w", err)
			}
			pw = b
		}
		if pw == "" {
			return nil, fmt.Errorf("user %q has no password: give a password file", o.User)
		}
		opts = append(opts, nats.UserInfo(o.User, pw))
	case o.TokenFile != "":
		t, err := readSecret(o.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		opts = append(opts, nats.Token(t))
	case o.Password != "" || o.PasswordFile != "":
		return nil, errors.New("a password without a user")
	}
	inbox := o.InboxUser
	if inbox == "" {
		inbox = o.User
	}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix("_INBOX."+inbox))
	}
	if o.TLSCAFile != "" {
		if _, err := os.Stat(o.TLSCAFile); err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		opts = append(opts, nats.RootCAs(o.TLSCAFile))
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return nil, errors.New("a TLS client certificate needs both its certificate and key files")
	}
	if o.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(o.TLSCertFile, o.TLSKeyFile))
	}
	return opts, nil
}

// readSecret reads a secret file, without its trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// ReadSecret reads a secret from a file: its content without the trailing
// newline; an empty file is an error.
func ReadSecret(path string) (string, error) { return readSecret(path) }
