package probes

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLS says how to verify a server and whom to present to it. The zero
// value verifies against the system's CAs and presents no certificate.
type TLS struct {
	// CAFile holds PEM certificates that sign the server's (default: the
	// system's).
	CAFile string
	// CertFile and KeyFile are a client certificate and its key: both or
	// neither.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry (default:
	// the target's host).
	ServerName string
	// InsecureSkipVerify turns verification off.
	InsecureSkipVerify bool
}

// Config reads the files and returns the client TLS configuration. Errors
// name the file at fault.
func (t TLS) Config() (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // only when the configuration says so
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca-file %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("tls cert-file and key-file go together: give both or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert-file %s and key-file %s: %w", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
