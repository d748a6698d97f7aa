package netapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
)

// Config names one volume of one cluster.
type Config struct {
	// Endpoint is the cluster management URL, such as
	// "https://cluster1.example.com".
	Endpoint string
	// Username and Password are a (read-only) cluster or SVM account's.
	Username, Password string
	// Volume is the volume's name; SVM narrows it to one SVM when names
	// repeat across SVMs.
	Volume, SVM string
	// Client makes the requests (default http.DefaultClient).
	Client *http.Client
}

// ErrAuth is wrapped when ONTAP refuses the credentials.
var ErrAuth = errors.New("ontap refused the credentials")

// Volume is one ONTAP volume.
type Volume struct {
	cfg  Config
	base *url.URL
}

// New returns the volume cfg names.
func New(cfg Config) (*Volume, error) {
	if cfg.Endpoint == "" || cfg.Username == "" || cfg.Volume == "" {
		return nil, errors.New("new ontap volume: endpoint, username and volume are required")
	}
	base, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("new ontap volume: %w", err)
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	return &Volume{cfg: cfg, base: base}, nil
}

type rw struct {
	Read  *float64 `json:"read"`
	Write *float64 `json:"write"`
}

type record struct {
	Name string `json:"name"`
	SVM  struct {
		Name string `json:"name"`
	} `json:"svm"`
	Metric *struct {
		Status     string `json:"status"`
		Timestamp  string `json:"timestamp"`
		Duration   string `json:"duration"`
		IOPS       rw     `json:"iops"`
		Latency    rw     `json:"latency"`
		Throughput rw     `json:"throughput"`
	} `json:"metric"`
}

type collection struct {
	Records    []record `json:"records"`
	NumRecords int      `json:"num_records"`
	Links      struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
}

type errorBody struct {
	Error *struct {
		Message string `json:"message"`
		Code    string `json:"code"`
		Target  string `json:"target"`
	} `json:"error"`
}

// okStatus are the sample statuses whose figures are usable: "ok", and a
// sample ONTAP collected late and filled in.
var okStatus = map[string]bool{"ok": true, "backfilled_data": true}

// PerformanceMetric returns the volume's last performance sample.
func (v *Volume) PerformanceMetric(ctx context.Context) (volumes.Metric, error) {
	q := url.Values{"name": {v.cfg.Volume}, "fields": {"metric,svm.name"}}
	if v.cfg.SVM != "" {
		q.Set("svm.name", v.cfg.SVM)
	}
	next := "/api/storage/volumes?" + q.Encode()
	for range maxPages {
		c, err := v.get(ctx, next)
		if err != nil {
			return volumes.Metric{}, err
		}
		for _, r := range c.Records {
			if r.Name == v.cfg.Volume && (v.cfg.SVM == "" || r.SVM.Name == v.cfg.SVM) {
				return v.metric(r)
			}
		}
		if c.Links.Next == nil || c.Links.Next.Href == "" {
			return volumes.Metric{}, fmt.Errorf("ontap volume %s: not found", v.name())
		}
		next = c.Links.Next.Href
	}
	return volumes.Metric{}, fmt.Errorf("ontap volume %s: not in the first %d pages", v.name(), maxPages)
}

// maxPages bounds following _links.next, against a server that loops.
const maxPages = 100

func (v *Volume) name() string {
	if v.cfg.SVM != "" {
		return v.cfg.SVM + ":" + v.cfg.Volume
	}
	return v.cfg.Volume
}

func (v *Volume) metric(r record) (volumes.Metric, error) {
	m := r.Metric
	if m == nil {
		return volumes.Metric{}, fmt.Errorf("%w: ontap volume %s has no metric", volumes.ErrGarbage, v.name())
	}
	if !okStatus[m.Status] {
		return volumes.Metric{}, fmt.Errorf("ontap volume %s: metric sample status %q", v.name(), m.Status)
	}
	for name, f := range map[string]*float64{
		"iops.read": m.IOPS.Read, "iops.write": m.IOPS.Write,
		"throughput.read": m.Throughput.Read, "throughput.write": m.Throughput.Write,
		"latency.read": m.Latency.Read, "latency.write": m.Latency.Write,
	} {
		if f == nil {
			return volumes.Metric{}, fmt.Errorf("%w: ontap volume %s metric has no %s", volumes.ErrGarbage, v.name(), name)
		}
	}
	out := volumes.Metric{
		IOPSRead: *m.IOPS.Read, IOPSWrite: *m.IOPS.Write,
		BytesReadPerSec: *m.Throughput.Read, BytesWritePerSec: *m.Throughput.Write,
		LatencyUsecRead: *m.Latency.Read, LatencyUsecWrite: *m.Latency.Write,
	}
	return out, out.Check()
}

// get fetches one page; ref is a path and query, relative to the
// endpoint, as ONTAP's _links give them.
func (v *Volume) get(ctx context.Context, ref string) (collection, error) {
	r, err := url.Parse(ref)
	if err != nil || r.IsAbs() || r.Host != "" {
		return collection{}, fmt.Errorf("%w: ontap link %q is not a path on the endpoint", volumes.ErrGarbage, ref)
	}
	u := *v.base
	u.Path = strings.TrimRight(u.Path, "/") + r.Path
	u.RawQuery = r.RawQuery
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return collection{}, fmt.Errorf("ontap volume %s: %w", v.name(), err)
	}
	req.SetBasicAuth(v.cfg.Username, v.cfg.Password)
	req.Header.Set("Accept", "application/hal+json")
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return collection{}, fmt.Errorf("get ontap volume %s: %w", v.name(), err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, volumes.MaxResponseBytes))
	resp.Body.Close()
	if err != nil {
		return collection{}, fmt.Errorf("read ontap volume %s: %w", v.name(), err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return collection{}, fmt.Errorf("%w: %s", ErrAuth, describe(resp.Status, body))
	case resp.StatusCode != http.StatusOK:
		return collection{}, fmt.Errorf("get ontap volume %s: %s", v.name(), describe(resp.Status, body))
	}
	var c collection
	if err := json.Unmarshal(body, &c); err != nil {
		return collection{}, fmt.Errorf("%w: ontap volume %s: %w", volumes.ErrGarbage, v.name(), err)
	}
	return c, nil
}

// describe renders an error answer: its status and ONTAP's message and
// code.
func describe(status string, body []byte) string {
	var e errorBody
	if json.Unmarshal(body, &e) == nil && e.Error != nil {
		return fmt.Sprintf("%s: %s (code %s)", status, e.Error.Message, e.Error.Code)
	}
	return status
}
