package httpjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
)

// Field locates one figure: Path is a dot-separated path through objects
// (by key) and arrays (by index); the number found there, or a string
// holding one, is multiplied by Scale (default 1).
type Field struct {
	Path  string
	Scale float64
}

// Mapping locates the six figures in the answer. Every path is required:
// a figure the endpoint does not have is mapped to a constant with the
// path "" and Scale 0, which reads as 0.
type Mapping struct {
	IOPSRead, IOPSWrite               Field
	BytesReadPerSec, BytesWritePerSec Field
	LatencyUsecRead, LatencyUsecWrite Field
}

// Config describes the endpoint.
type Config struct {
	URL string
	// Headers are sent with every request (an Authorization header, say).
	Headers map[string]string
	Fields  Mapping
	// Client makes the requests (default http.DefaultClient).
	Client *http.Client
}

// Volume is one volume behind a JSON endpoint.
type Volume struct {
	cfg Config
}

// New returns the volume cfg describes.
func New(cfg Config) (*Volume, error) {
	if cfg.URL == "" {
		return nil, errors.New("new http-json volume: no url")
	}
	for _, f := range cfg.Fields.fields() {
		if f.Path == "" && f.Scale != 0 {
			return nil, fmt.Errorf("new http-json volume: %s has no path (map it with scale 0 to report 0)", f.name)
		}
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	return &Volume{cfg: cfg}, nil
}

func (m *Mapping) fields() []namedField {
	return []namedField{
		{"iops_read", &m.IOPSRead}, {"iops_write", &m.IOPSWrite},
		{"io_bytes_read", &m.BytesReadPerSec}, {"io_bytes_write", &m.BytesWritePerSec},
		{"io_usec_read", &m.LatencyUsecRead}, {"io_usec_write", &m.LatencyUsecWrite},
	}
}

// namedField is a field of a Mapping with its name, in a fixed order, so
// the first field at fault is the same on every poll.
type namedField struct {
	name string
	*Field
}

// PerformanceMetric gets the endpoint and maps its answer.
func (v *Volume) PerformanceMetric(ctx context.Context) (volumes.Metric, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.URL, nil)
	if err != nil {
		return volumes.Metric{}, fmt.Errorf("http-json volume: %w", err)
	}
	for k, val := range v.cfg.Headers {
		req.Header.Set(k, val)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return volumes.Metric{}, fmt.Errorf("get http-json volume: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, volumes.MaxResponseBytes))
	resp.Body.Close()
	if err != nil {
		return volumes.Metric{}, fmt.Errorf("read http-json volume: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return volumes.Metric{}, fmt.Errorf("get http-json volume: %s: %s", resp.Status, snippet(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return volumes.Metric{}, fmt.Errorf("%w: http-json volume: %w", volumes.ErrGarbage, err)
	}
	var m volumes.Metric
	out := map[string]*float64{
		"iops_read": &m.IOPSRead, "iops_write": &m.IOPSWrite,
		"io_bytes_read": &m.BytesReadPerSec, "io_bytes_write": &m.BytesWritePerSec,
		"io_usec_read": &m.LatencyUsecRead, "io_usec_write": &m.LatencyUsecWrite,
	}
	fields := v.cfg.Fields
	for _, f := range fields.fields() {
		if f.Path == "" {
			continue // mapped to 0
		}
		x, err := lookup(doc, f.Path)
		if err != nil {
			return volumes.Metric{}, fmt.Errorf("%w: http-json volume %s: %w", volumes.ErrGarbage, f.name, err)
		}
		scale := f.Scale
		if scale == 0 {
			scale = 1
		}
		*out[f.name] = x * scale
	}
	return m, m.Check()
}

// lookup follows path through doc to a number.
func lookup(doc any, path string) (float64, error) {
	cur := doc
	for _, key := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[key]
			if !ok {
				return 0, fmt.Errorf("path %s: no key %q", path, key)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(c) {
				return 0, fmt.Errorf("path %s: no index %q in an array of %d", path, key, len(c))
			}
			cur = c[i]
		default:
			return 0, fmt.Errorf("path %s: %q is inside a %T", path, key, cur)
		}
	}
	switch c := cur.(type) {
	case json.Number:
		return c.Float64()
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(c), 64)
		if err != nil {
			return 0, fmt.Errorf("path %s: %q is not a number", path, c)
		}
		return f, nil
	}
	return 0, fmt.Errorf("path %s: a %T, not a number", path, cur)
}

// snippet is the start of an error answer, for the error message.
func snippet(body []byte) string {
	const max = 200
	s := strings.TrimSpace(string(body))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
