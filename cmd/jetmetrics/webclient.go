package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
)

// webPasswordEnv holds the password of --web.username, instead of
// --web.password-file: a password is never a flag's value, which any
// user of the machine can read in the process list.
const webPasswordEnv = "JETMETRICS_WEB_PASSWORD"

// webFlags are the flags of the CLI verbs that talk to a node's HTTP
// server (status, top): where it is, the basic auth user of its
// --web.config.file and the CA its TLS certificate is signed by.
type webFlags struct {
	url, username, passwordFile, caFile string
	insecure                            bool
}

// addWebFlags defines the web flags on fs.
func addWebFlags(fs *flag.FlagSet) *webFlags {
	f := &webFlags{}
	fs.StringVar(&f.url, "web.url", "http://127.0.0.1:9480", "base URL of a node's HTTP server (https:// for a node with TLS in its --web.config.file)")
	fs.StringVar(&f.username, "web.username", "", "basic auth user of the node's --web.config.file, with --web.password-file (or "+webPasswordEnv+")")
	fs.StringVar(&f.passwordFile, "web.password-file", "", "file holding --web.username's password")
	fs.StringVar(&f.caFile, "web.ca-file", "", "PEM CA certificates the node's TLS certificate is checked against (default the system's)")
	fs.BoolVar(&f.insecure, "web.insecure-skip-verify", false, "do not check the node's TLS certificate (warns on every use; prefer --web.ca-file)")
	return f
}

// webClient asks one node's HTTP server.
type webClient struct {
	base           string
	user, password string
	http           *http.Client
}

// client checks the flags and builds the client; warnings (an unchecked
// certificate) go to stderr.
func (f *webFlags) client(stderr io.Writer) (*webClient, error) {
	if !strings.HasPrefix(f.url, "http://") && !strings.HasPrefix(f.url, "https://") {
		return nil, flagError("web.url", f.url, "want http://host:port or https://host:port")
	}
	c := &webClient{base: strings.TrimRight(f.url, "/"), user: f.username}
	env := os.Getenv(webPasswordEnv)
	switch {
	case f.passwordFile != "" && env != "":
		return nil, flagError("web.password-file", f.passwordFile, "the password is also in "+webPasswordEnv+": give it once")
	case f.username == "" && (f.passwordFile != "" || env != ""):
		return nil, flagError("web.username", "", "a password is given (--web.password-file or "+webPasswordEnv+"): want the user it belongs to")
	case f.username != "" && f.passwordFile == "" && env == "":
		return nil, flagError("web.username", f.username, "want its password in --web.password-file (or "+webPasswordEnv+")")
	case f.passwordFile != "":
		pw, err := natsauth.ReadSecret(f.passwordFile)
		if err != nil {
			return nil, flagError("web.password-file", f.passwordFile, err.Error())
		}
		c.password = pw
	default:
		c.password = env
	}
	if strings.Contains(f.username, ":") {
		return nil, flagError("web.username", f.username, "a basic auth user cannot hold ':'")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if f.caFile != "" || f.insecure {
		if strings.HasPrefix(f.url, "http://") {
			return nil, flagError("web.url", f.url, "--web.ca-file and --web.insecure-skip-verify are for https:// URLs")
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return nil, flagError("web.ca-file", f.caFile, err.Error())
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, flagError("web.ca-file", f.caFile, "holds no PEM certificate")
			}
		}
		if f.insecure {
			fmt.Fprintf(stderr, "warning: --web.insecure-skip-verify: the certificate of %s is not checked; anyone on the path can read and change the answers (and the password)\n", f.url)
			cfg.InsecureSkipVerify = true
		}
		tr.TLSClientConfig = cfg
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// close closes the client's idle connections: a command that ends leaves
// none open (a test runs many in one process).
func (c *webClient) close() { c.http.CloseIdleConnections() }

// errUnauthorized is a 401 or 403: the credentials are missing or wrong.
var errUnauthorized = errors.New("unauthorized")

// get fetches path with accept (none when empty), limited to limit bytes.
// A 401 or 403 is errUnauthorized, wrapped with what to do.
func (c *webClient) get(ctx context.Context, path, accept string, limit int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, 0, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		how := "the node's --web.config.file asks for basic auth: give --web.username and --web.password-file"
		if c.user != "" {
			how = fmt.Sprintf("user %q and its password are not accepted by the node's --web.config.file", c.user)
		}
		return nil, resp.StatusCode, fmt.Errorf("%w: HTTP %s from %s: %s", errUnauthorized, resp.Status, c.base+path, how)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return b, resp.StatusCode, err
}

// getJSON fetches path and decodes a 200 answer into into; another
// status is an error with the answer's "error" field or first line.
func (c *webClient) getJSON(ctx context.Context, path string, into any) error {
	b, code, err := c.get(ctx, path, "application/json", 8<<20)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
		}
		return fmt.Errorf("HTTP %d from %s: %s", code, path, e.Error)
	}
	return json.Unmarshal(b, into)
}
