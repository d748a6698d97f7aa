package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	jmconfig "github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/httpjson"
)

// volumeAPIConfig is the volume-api figure: clients asking one node for a
// volume's performance at once, for duration, against a backend that
// answers in backendDelay.
type volumeAPIConfig struct {
	clients      int
	duration     time.Duration
	backendDelay time.Duration
}

// perfBody is what the stand-in backend answers, in the http-json shape.
const perfBody = `{"data":{"read":{"iops":1200,"bps":52428800,"lat":310},"write":{"iops":800,"bps":31457280,"lat":540}}}`

// volumeAPIFigure measures GET /api/v1/volumes/{name}/performance-metric
// served from the cache by a node, beside the design the Backend.AI
// proposal starts from: every request calls the backend live (here: an
// HTTP handler calling the same http-json backend per request). Both are
// timed over the same loopback HTTP with the same clients; the backend
// answers in backendDelay (the proposal's motivation: 50 ms).
func volumeAPIFigure(ctx context.Context, e *env, cfg volumeAPIConfig, rep *report) error {
	var backendCalls atomic.Int64
	backendURL, err := e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		backendCalls.Add(1)
		t := time.NewTimer(cfg.backendDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, perfBody)
	}))
	if err != nil {
		return err
	}
	fields := map[string]string{
		"iops-read": "data.read.iops", "iops-write": "data.write.iops",
		"throughput-read": "data.read.bps", "throughput-write": "data.write.bps",
		"latency-read": "data.read.lat", "latency-write": "data.write.lat",
	}
	rn, err := e.startNode(ctx, node.Config{Name: "api", File: jmconfig.File{
		Observers: jmconfig.Observers{Volume: jmconfig.Observer{ObserveInterval: time.Second, CacheTTL: time.Minute}},
		Volumes:   []jmconfig.Volume{{Name: "projects", Backend: jmconfig.BackendHTTPJSON, Endpoint: backendURL + "/perf", Fields: fields}},
	}})
	if err != nil {
		return err
	}
	cached := rn.url + "/api/v1/volumes/projects/performance-metric"
	// Wait until the observer has filled the cache.
	err = poll(ctx, time.Minute, func() error {
		src, err := perfSource(ctx, cached)
		if err != nil {
			return err
		}
		if src != "cache" {
			return fmt.Errorf("answered from %q, not the cache", src)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The peer: a handler that asks the backend on every request.
	vol, err := httpjson.New(httpjson.Config{URL: backendURL + "/perf", Fields: httpjson.Mapping{
		IOPSRead: httpjson.Field{Path: "data.read.iops"}, IOPSWrite: httpjson.Field{Path: "data.write.iops"},
		BytesReadPerSec: httpjson.Field{Path: "data.read.bps"}, BytesWritePerSec: httpjson.Field{Path: "data.write.bps"},
		LatencyUsecRead: httpjson.Field{Path: "data.read.lat"}, LatencyUsecWrite: httpjson.Field{Path: "data.write.lat"},
	}, Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.clients}}})
	if err != nil {
		return err
	}
	liveURL, err := e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := vol.PerformanceMetric(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"volume": "projects", "metric": m, "source": "live", "observed_at": time.Now().UTC()})
	}))
	if err != nil {
		return err
	}
	callsBefore := backendCalls.Load()
	ours, err := hammer(ctx, cached, cfg.clients, cfg.duration)
	if err != nil {
		return fmt.Errorf("cache path: %w", err)
	}
	ourCalls := backendCalls.Load() - callsBefore
	peer, err := hammer(ctx, liveURL+"/live", cfg.clients, cfg.duration)
	if err != nil {
		return fmt.Errorf("live path: %w", err)
	}
	label := fmt.Sprintf("volume API, %d clients, backend answering in %s", cfg.clients, cfg.backendDelay)
	rep.add(
		newRow(label+": requests/s from the cache", "req/s", ours.rate, peer.rate, goal{},
			fmt.Sprintf("peer: a live backend call per request; backend calls while ours ran: %d (the observer's polls)", ourCalls)),
		newRow(label+": p50", "ms", ours.p50, peer.p50, goal{}, "peer: a live backend call per request"),
		newRow(label+": p99", "ms", ours.p99, peer.p99, goal{}, "peer: a live backend call per request"),
	)
	return nil
}

// perfSource asks url once and returns the answer's source.
func perfSource(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		Source string `json:"source"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	return v.Source, nil
}

// apiLoad is a load run's throughput and latency percentiles.
type apiLoad struct {
	rate, p50, p99 float64 // requests/s, ms, ms
}

// hammer has clients GET url back to back for d (bounded by a request
// count as well) and returns the throughput and latency percentiles.
// Any answer but 200 fails the run.
func hammer(ctx context.Context, url string, clients int, d time.Duration) (apiLoad, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	const maxRequests = 2_000_000
	var sent atomic.Int64
	lat := make([][]float64, clients)
	errs := make(chan error, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil && sent.Add(1) <= maxRequests {
				t0 := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					errs <- err
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s: %s", url, resp.Status)
				}
				if err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], float64(time.Since(t0).Microseconds())/1000)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return apiLoad{}, err
	default:
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return apiLoad{}, fmt.Errorf("no request finished")
	}
	slices.Sort(all)
	q := func(p float64) float64 { return all[min(len(all)-1, int(math.Ceil(p*float64(len(all))))-1)] }
	return apiLoad{rate: float64(len(all)) / elapsed.Seconds(), p50: q(0.5), p99: q(0.99)}, nil
}
