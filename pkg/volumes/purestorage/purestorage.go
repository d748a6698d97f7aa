package purestorage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
)

// Config names one volume of one array.
type Config struct {
	// Endpoint is the array's management URL, such as
	// "https://flasharray.example.com".
	Endpoint string
	// APIToken is the API token of a (read-only) array user.
	APIToken string
	// Volume is the volume's name on the array ("vol1", "pod1::vol1").
	Volume string
	// APIVersion is the REST version in the paths (default "2.4", which
	// every Purity//FA with REST 2 serves).
	APIVersion string
	// Client makes the requests (default http.DefaultClient); TLS settings
	// go in its transport.
	Client *http.Client
}

// ErrAuth is wrapped when the array refuses the API token.
var ErrAuth = errors.New("flasharray refused the api token")

// Volume is one FlashArray volume.
type Volume struct {
	cfg  Config
	base string

	mu      sync.Mutex
	session string
}

// New returns the volume cfg names.
func New(cfg Config) (*Volume, error) {
	if cfg.Endpoint == "" || cfg.APIToken == "" || cfg.Volume == "" {
		return nil, errors.New("new flasharray volume: endpoint, api token and volume are required")
	}
	if _, err := url.Parse(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("new flasharray volume: %w", err)
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = "2.4"
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	return &Volume{cfg: cfg, base: strings.TrimRight(cfg.Endpoint, "/") + "/api/" + cfg.APIVersion}, nil
}

// performance is one item of volumes/performance, in the array's units:
// operations and bytes per second, microseconds per operation.
type performance struct {
	Name             string   `json:"name"`
	ReadsPerSec      *float64 `json:"reads_per_sec"`
	WritesPerSec     *float64 `json:"writes_per_sec"`
	ReadBytesPerSec  *float64 `json:"read_bytes_per_sec"`
	WriteBytesPerSec *float64 `json:"write_bytes_per_sec"`
	UsecPerReadOp    *float64 `json:"usec_per_read_op"`
	UsecPerWriteOp   *float64 `json:"usec_per_write_op"`
}

type page struct {
	ContinuationToken *string       `json:"continuation_token"`
	Items             []performance `json:"items"`
}

// errorBody is the array's error answer.
type errorBody struct {
	Errors []struct {
		Context string `json:"context"`
		Message string `json:"message"`
	} `json:"errors"`
}

// PerformanceMetric returns the volume's current performance as the array
// reports it.
func (v *Volume) PerformanceMetric(ctx context.Context) (volumes.Metric, error) {
	token := ""
	for {
		p, err := v.page(ctx, token)
		if err != nil {
			return volumes.Metric{}, err
		}
		for _, it := range p.Items {
			if it.Name == v.cfg.Volume {
				return metric(it)
			}
		}
		if p.ContinuationToken == nil || *p.ContinuationToken == "" {
			return volumes.Metric{}, fmt.Errorf("flasharray volume %s: not in volumes/performance", v.cfg.Volume)
		}
		token = *p.ContinuationToken
	}
}

func metric(it performance) (volumes.Metric, error) {
	for name, f := range map[string]*float64{
		"reads_per_sec": it.ReadsPerSec, "writes_per_sec": it.WritesPerSec,
		"read_bytes_per_sec": it.ReadBytesPerSec, "write_bytes_per_sec": it.WriteBytesPerSec,
		"usec_per_read_op": it.UsecPerReadOp, "usec_per_write_op": it.UsecPerWriteOp,
	} {
		if f == nil {
			return volumes.Metric{}, fmt.Errorf("%w: flasharray volume %s has no %s", volumes.ErrGarbage, it.Name, name)
		}
	}
	m := volumes.Metric{
		IOPSRead: *it.ReadsPerSec, IOPSWrite: *it.WritesPerSec,
		BytesReadPerSec: *it.ReadBytesPerSec, BytesWritePerSec: *it.WriteBytesPerSec,
		LatencyUsecRead: *it.UsecPerReadOp, LatencyUsecWrite: *it.UsecPerWriteOp,
	}
	return m, m.Check()
}

// page gets one page of the volume's performance, logging in first when
// there is no session, and once more if the array says it expired.
func (v *Volume) page(ctx context.Context, continuation string) (page, error) {
	q := url.Values{"names": {v.cfg.Volume}}
	if continuation != "" {
		q.Set("continuation_token", continuation)
	}
	u := v.base + "/volumes/performance?" + q.Encode()
	for attempt := 0; ; attempt++ {
		session, err := v.sessionToken(ctx)
		if err != nil {
			return page{}, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return page{}, fmt.Errorf("flasharray volume %s: %w", v.cfg.Volume, err)
		}
		req.Header.Set("x-auth-token", session)
		req.Header.Set("Accept", "application/json")
		resp, err := v.cfg.Client.Do(req)
		if err != nil {
			return page{}, fmt.Errorf("get flasharray volume %s performance: %w", v.cfg.Volume, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, volumes.MaxResponseBytes))
		resp.Body.Close()
		if err != nil {
			return page{}, fmt.Errorf("read flasharray volume %s performance: %w", v.cfg.Volume, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			v.dropSession(session)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return page{}, fmt.Errorf("get flasharray volume %s performance: %s", v.cfg.Volume, describe(resp.Status, body))
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			return page{}, fmt.Errorf("%w: flasharray volume %s performance: %w", volumes.ErrGarbage, v.cfg.Volume, err)
		}
		return p, nil
	}
}

func (v *Volume) sessionToken(ctx context.Context) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.session != "" {
		return v.session, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.base+"/login", nil)
	if err != nil {
		return "", fmt.Errorf("flasharray login: %w", err)
	}
	req.Header.Set("api-token", v.cfg.APIToken)
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("flasharray login: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, volumes.MaxResponseBytes))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", fmt.Errorf("%w: %s", ErrAuth, describe(resp.Status, body))
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("flasharray login: %s", describe(resp.Status, body))
	}
	s := resp.Header.Get("x-auth-token")
	if s == "" {
		return "", errors.New("flasharray login: no x-auth-token in the answer")
	}
	v.session = s
	return s, nil
}

// dropSession forgets session unless another poll already replaced it.
func (v *Volume) dropSession(session string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.session == session {
		v.session = ""
	}
}

// describe renders an error answer: its status and the array's messages
// (never the request, which holds the token).
func describe(status string, body []byte) string {
	var e errorBody
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 {
		msgs := make([]string, 0, len(e.Errors))
		for _, x := range e.Errors {
			m := x.Message
			if x.Context != "" {
				m = x.Context + ": " + m
			}
			msgs = append(msgs, m)
		}
		return status + ": " + strings.Join(msgs, "; ")
	}
	return status
}
