package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/metrics"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The Accept headers of the three formats a scraper negotiates.
const (
	acceptText        = "text/plain;version=0.0.4"
	acceptOpenMetrics = "application/openmetrics-text;version=1.0.0"
	acceptProto       = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)

// scrapeClient fetches expositions without decompressing them: the
// harness asks for gzip itself and measures the bytes on the wire.
var scrapeClient = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}}

// scraped is one scrape: its time, the bytes the process allocated
// meanwhile (server and client, all in this process), and the body.
type scraped struct {
	dur   time.Duration
	alloc uint64
	body  []byte
	wire  int // body bytes as sent
	ct    expfmt.Format
	gzip  bool
}

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

// heapAllocs is the bytes this process has allocated on the heap so far.
func heapAllocs() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

// scrape fetches url once and keeps the body.
func scrape(ctx context.Context, url, accept string, gz bool) (scraped, error) {
	return fetch(ctx, url, accept, gz, true)
}

// timeScrape fetches url once and counts the body's bytes without keeping
// them, so the client allocates next to nothing.
func timeScrape(ctx context.Context, url, accept string, gz bool) (scraped, error) {
	return fetch(ctx, url, accept, gz, false)
}

func fetch(ctx context.Context, url, accept string, gz, keep bool) (scraped, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return scraped{}, err
	}
	req.Header.Set("Accept", accept)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	a0 := heapAllocs()
	start := time.Now()
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return scraped{}, fmt.Errorf("GET %s: %w", url, err)
	}
	var buf bytes.Buffer
	var n int64
	if keep || resp.StatusCode != http.StatusOK {
		n, err = buf.ReadFrom(resp.Body)
	} else {
		n, err = io.CopyBuffer(io.Discard, resp.Body, discardBuf[:])
	}
	resp.Body.Close()
	d := time.Since(start)
	alloc := heapAllocs() - a0
	if err != nil {
		return scraped{}, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return scraped{}, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(buf.Bytes()))
	}
	return scraped{dur: d, alloc: alloc, body: buf.Bytes(), wire: int(n), ct: expfmt.Format(resp.Header.Get("Content-Type")),
		gzip: resp.Header.Get("Content-Encoding") == "gzip"}, nil
}

// discardBuf is timeScrape's copy buffer; scrapes run one at a time.
var discardBuf [64 << 10]byte

// plain returns the body, gunzipped if it came gzipped.
func (s scraped) plain() ([]byte, error) {
	if !s.gzip {
		return s.body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(s.body))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	return b, nil
}

// countSeries parses the body in its negotiated format and counts the
// series of the families named with prefix, by node label.
func (s scraped) countSeries(prefix string) (map[string]int, error) {
	b, err := s.plain()
	if err != nil {
		return nil, err
	}
	switch s.ct.FormatType() {
	case expfmt.TypeOpenMetrics:
		return checkOpenMetrics(b, prefix)
	case expfmt.TypeTextPlain:
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("text: %w", err)
		}
		out := map[string]int{}
		for _, mf := range fams {
			countFamily(out, mf, prefix)
		}
		return out, nil
	case expfmt.TypeProtoDelim:
		dec := expfmt.NewDecoder(bytes.NewReader(b), s.ct)
		out := map[string]int{}
		seen := map[string]bool{}
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				if errors.Is(err, io.EOF) {
					return out, nil
				}
				return nil, fmt.Errorf("protobuf: %w", err)
			}
			if seen[mf.GetName()] {
				return nil, fmt.Errorf("protobuf: family %s twice", mf.GetName())
			}
			seen[mf.GetName()] = true
			countFamily(out, &mf, prefix)
		}
	}
	return nil, fmt.Errorf("unexpected format %q", s.ct)
}

func countFamily(out map[string]int, mf *dto.MetricFamily, prefix string) {
	if len(mf.GetName()) < len(prefix) || mf.GetName()[:len(prefix)] != prefix {
		return
	}
	for _, m := range mf.GetMetric() {
		node := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "node" {
				node = l.GetValue()
			}
		}
		out[node]++
	}
}

// serveHTTP serves h on a loopback port until the env closes.
func (e *env) serveHTTP(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	e.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return "http://" + ln.Addr().String(), nil
}
