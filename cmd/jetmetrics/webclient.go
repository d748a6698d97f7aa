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
	"net"
	"net/http"
	"net/url"
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
	insecure, plaintextAuth             bool
}

// addWebFlags defines the web flags on fs.
func addWebFlags(fs *flag.FlagSet) *webFlags {
	f := &webFlags{}
	fs.StringVar(&f.url, "web.url", "http://127.0.0.1:9480", "base URL of a node's HTTP server (https:// for a node with TLS in its --web.config.file)")
	fs.StringVar(&f.username, "web.username", "", "basic auth user of the node's --web.config.file, with --web.password-file (or "+webPasswordEnv+")")
	fs.StringVar(&f.passwordFile, "web.password-file", "", "file holding --web.username's password")
	fs.StringVar(&f.caFile, "web.ca-file", "", "PEM CA certificates the node's TLS certificate is checked against (default the system's)")
	fs.BoolVar(&f.insecure, "web.insecure-skip-verify", false, "do not check the node's TLS certificate (warns on every use; prefer --web.ca-file)")
	fs.BoolVar(&f.plaintextAuth, "web.insecure-plaintext-auth", false, "send --web.username's password over an http:// --web.url to a host other than loopback, in clear text (warns on every use; prefer https://)")
	return f
}

// webClient asks one node's HTTP server.
type webClient struct {
	base           string
	user, password string
	http           *http.Client
}

// client checks the flags and builds the client; warnings (an unchecked
// certificate, a password sent in clear text) go to stderr. A password
// goes over http:// only to a loopback host unless
// --web.insecure-plaintext-auth says otherwise: elsewhere anyone on the
// path could read it.
func (f *webFlags) client(stderr io.Writer) (*webClient, error) {
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, flagError("web.url", f.url, "want http://host:port or https://host:port")
	}
	if u.User != nil {
		// Not shown: the value holds a password.
		return nil, flagError("web.url", u.Redacted(), "credentials in the URL are refused (a flag's value shows in the process list): give --web.username and --web.password-file")
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
	switch {
	case f.plaintextAuth && u.Scheme == "https":
		return nil, flagError("web.insecure-plaintext-auth", "true", "it is for an http:// --web.url, and this one is https://")
	case c.user != "" && u.Scheme == "http" && !isLoopback(u.Hostname()):
		if !f.plaintextAuth {
			return nil, flagError("web.url", f.url, "the password of --web.username would travel in clear text to a host other than loopback: use https:// (the node's --web.config.file tls_server_config), or accept the risk with --web.insecure-plaintext-auth")
		}
		fmt.Fprintf(stderr, "warning: --web.insecure-plaintext-auth: the password of --web.username goes to %s in clear text; anyone on the path can read it\n", f.url)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if f.caFile != "" || f.insecure {
		if u.Scheme == "http" {
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
	c.http = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c, nil
}

// errPlaintextRedirect is a redirect from https:// to http:// refused
// because the request carries the password.
var errPlaintextRedirect = errors.New("redirect to http:// refused")

// checkRedirect follows up to 10 redirects, as net/http does, except one
// from https:// to http:// while the request carries the password: Go
// keeps the Authorization header on a redirect to the same host whatever
// the scheme (it drops it only for another host), so following it would
// send the password in clear text.
func (c *webClient) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	prev := via[len(via)-1]
	if req.URL.Scheme == "http" && prev.URL.Scheme == "https" && req.Header.Get("Authorization") != "" {
		return fmt.Errorf("%w: %s answered with a redirect to %s, which would send the password of --web.username in clear text", errPlaintextRedirect, prev.URL.Redacted(), req.URL.Redacted())
	}
	return nil
}

// isLoopback reports whether host (a URL's, without brackets) is this
// machine: localhost, or an address of 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// close closes the client's idle connections: a command that ends leaves
// none open (a test runs many in one process).
func (c *webClient) close() { c.http.CloseIdleConnections() }

// errUnauthorized is a 401 or 403: the credentials are missing or wrong.
var errUnauthorized = errors.New("unauthorized")

// refused reports whether err is the node refusing the credentials or the
// client refusing to send them: a problem to report as it is (exit 1),
// not a node that was not reached.
func refused(err error) bool {
	return errors.Is(err, errUnauthorized) || errors.Is(err, errPlaintextRedirect)
}

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
	if errors.Is(err, errPlaintextRedirect) {
		// Without the url.Error around it, which names the URL again.
		return nil, 0, errors.Unwrap(err)
	}
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
