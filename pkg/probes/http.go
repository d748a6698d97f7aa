package probes

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// DefaultMaxBodyBytes bounds how much of an answer's body an HTTP probe
// reads.
const DefaultMaxBodyBytes = 1 << 20

// HTTPConfig configures an HTTP(S) probe. The zero value of each field
// but URL means the default documented on it.
type HTTPConfig struct {
	// URL is the http:// or https:// URL to request. It is never shown in
	// an error: it may carry a token.
	URL string
	// Method is the request's method (default GET).
	Method string
	// ExpectStatus lists the status codes that count as a success
	// (default: any from 200 to 399).
	ExpectStatus []int
	// BodyContains, when set, must occur in the body.
	BodyContains string
	// BodyMatch, when set, must match the body.
	BodyMatch *regexp.Regexp
	// MaxBodyBytes bounds the body read, and so what BodyContains and
	// BodyMatch see (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// FollowRedirects makes the probe follow up to 10 redirects; by
	// default a redirect is the answer, and its status is checked.
	FollowRedirects bool
	// TLS configures HTTPS (default: verify against the system's CAs).
	TLS *tls.Config
}

// HTTP probes a URL: the latency is the time from the request to the end
// of the body (read up to MaxBodyBytes), over a fresh connection each time
// so that every sample measures the same work.
type HTTP struct {
	cfg    HTTPConfig
	client *http.Client
}

var _ Prober = (*HTTP)(nil)

// NewHTTP checks cfg and returns the probe.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("http probe: want an http:// or https:// URL with a host")
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodGet
	}
	for _, c := range cfg.ExpectStatus {
		if c < 100 || c > 599 {
			return nil, fmt.Errorf("http probe: expected status %d is not an HTTP status code (100 to 599)", c)
		}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	tlsConfig := cfg.TLS
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr := &http.Transport{
		Proxy:                  nil, // a probe measures the service, not a proxy
		DialContext:            (&net.Dialer{}).DialContext,
		TLSClientConfig:        tlsConfig.Clone(),
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	p := &HTTP{cfg: cfg, client: &http.Client{Transport: tr}}
	if !cfg.FollowRedirects {
		p.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return p, nil
}

// Probe makes one request.
func (p *HTTP) Probe(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, p.cfg.Method, p.cfg.URL, nil)
	if err != nil {
		return 0, &Error{Reason: ReasonError, Msg: "http: cannot build the request: check the URL and method"}
	}
	req.Header.Set("User-Agent", "jetmetrics-probe")
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fail("http "+p.cfg.Method, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxBodyBytes))
	took := time.Since(start)
	if err != nil {
		return 0, fail("http read body", err)
	}
	if !p.expected(resp.StatusCode) {
		return 0, &Error{Reason: ReasonStatus, Msg: "http: status " + strconv.Itoa(resp.StatusCode) + ", want " + p.want()}
	}
	if p.cfg.BodyContains != "" && !bytes.Contains(body, []byte(p.cfg.BodyContains)) {
		return 0, &Error{Reason: ReasonBody, Msg: fmt.Sprintf("http: the body (%d bytes read) does not contain %q", len(body), p.cfg.BodyContains)}
	}
	if p.cfg.BodyMatch != nil && !p.cfg.BodyMatch.Match(body) {
		return 0, &Error{Reason: ReasonBody, Msg: fmt.Sprintf("http: the body (%d bytes read) does not match %q", len(body), p.cfg.BodyMatch.String())}
	}
	return took, nil
}

func (p *HTTP) expected(code int) bool {
	if len(p.cfg.ExpectStatus) == 0 {
		return code >= 200 && code <= 399
	}
	return slices.Contains(p.cfg.ExpectStatus, code)
}

func (p *HTTP) want() string {
	if len(p.cfg.ExpectStatus) == 0 {
		return "200 to 399"
	}
	s := ""
	for i, c := range p.cfg.ExpectStatus {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(c)
	}
	return s
}
