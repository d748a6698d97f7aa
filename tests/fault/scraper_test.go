package fault_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const (
	// scrapeEvery paces the scraper.
	scrapeEvery = 2 * time.Millisecond
	// maxScrapes bounds the scraper's loop whatever the test does.
	maxScrapes = 50_000
)

// scraper reads the exposed metrics over and over while a test breaks
// things and checks every answer: the counters of the watched metrics (a
// counter's value, a histogram's buckets, count and sum) never go down and
// never vanish once seen, and each watched histogram passes check. An
// answer of unavailable (a 503 from a node catching up after losing Redis
// state) is fine; a lower value is not.
type scraper struct {
	fetch func() (fams map[string]*dto.MetricFamily, unavailable string, err error)
	watch func(name string) bool
	check func(f *dto.MetricFamily) error
	stop  chan struct{}
	done  chan struct{}

	mu          sync.Mutex
	last        map[string]float64
	scrapes     int
	unavailable int
	why         string        // the last unavailable answer
	busy        time.Duration // time spent scraping
	errs        []error
}

// startScraper scrapes url (/metrics) until finish.
func startScraper(t testing.TB, url string, watch func(string) bool, check func(*dto.MetricFamily) error) *scraper {
	client := &http.Client{Timeout: 10 * time.Second}
	return startReader(t, func() (map[string]*dto.MetricFamily, string, error) { return scrape(client, url) }, watch, check)
}

// startReader checks what fetch returns, over and over, until finish.
func startReader(t testing.TB, fetch func() (map[string]*dto.MetricFamily, string, error), watch func(string) bool, check func(*dto.MetricFamily) error) *scraper {
	s := &scraper{fetch: fetch, watch: watch, check: check, stop: make(chan struct{}), done: make(chan struct{}), last: map[string]float64{}}
	go s.run()
	t.Cleanup(s.halt)
	return s
}

// scrape fetches and parses url; a 503 is unavailable, with its body.
func scrape(client *http.Client, url string) (map[string]*dto.MetricFamily, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, string(body), nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	// Read the whole body first, so a connection cut mid-answer (a node
	// killed while it answers) reads as that, not as a malformed scrape.
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", url, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, "", fmt.Errorf("parse %s: %w", url, err)
	}
	return fams, "", nil
}

// reads is how many answers have been checked so far.
func (s *scraper) reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scrapes
}

func (s *scraper) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *scraper) run() {
	defer close(s.done)
	tick := time.NewTicker(scrapeEvery)
	defer tick.Stop()
	for range maxScrapes {
		s.once()
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

func (s *scraper) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 20 {
		s.errs = append(s.errs, err)
	}
}

// once fetches and checks one answer.
func (s *scraper) once() {
	start := time.Now()
	fams, unavailable, err := s.fetch()
	s.mu.Lock()
	s.busy += time.Since(start)
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
		return
	}
	if fams == nil {
		s.mu.Lock()
		s.unavailable++
		s.why = unavailable
		s.mu.Unlock()
		return
	}
	seen := map[string]float64{}
	for name, f := range fams {
		if !s.watch(name) {
			continue
		}
		if s.check != nil && f.GetType() == dto.MetricType_HISTOGRAM {
			if err := s.check(f); err != nil {
				s.fail(err)
			}
		}
		counters(f, func(key string, v float64) { seen[key] = v })
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scrapes++
	for k, prev := range s.last {
		v, ok := seen[k]
		switch {
		case !ok:
			if len(s.errs) < 20 {
				s.errs = append(s.errs, fmt.Errorf("read %d: %s vanished (it was %v)", s.scrapes, k, prev))
			}
		case v < prev:
			if len(s.errs) < 20 {
				s.errs = append(s.errs, fmt.Errorf("read %d: %s went down from %v to %v", s.scrapes, k, prev, v))
			}
		}
	}
	for k, v := range seen {
		if prev, ok := s.last[k]; !ok || v > prev {
			s.last[k] = v
		}
	}
}

// counters calls fn with every monotonic sample of f: a counter's value, a
// histogram's cumulative buckets, count and sum (the sums in this suite
// only grow: all observations are positive).
func counters(f *dto.MetricFamily, fn func(key string, v float64)) {
	for _, m := range f.GetMetric() {
		var lbl string
		for _, l := range m.GetLabel() {
			lbl += l.GetName() + "=" + strconv.Quote(l.GetValue()) + ","
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			fn(f.GetName()+"{"+lbl+"}", m.GetCounter().GetValue())
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			fn(f.GetName()+"_count{"+lbl+"}", float64(h.GetSampleCount()))
			fn(f.GetName()+"_sum{"+lbl+"}", h.GetSampleSum())
			for _, b := range h.GetBucket() {
				fn(f.GetName()+"_bucket{"+lbl+"le="+strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)+"}", float64(b.GetCumulativeCount()))
			}
		}
	}
}

// finish stops the scraper and fails the test with what it saw wrong. At
// least minScrapes answers must have been 200s, so a scraper that never
// got through cannot pass.
func (s *scraper) finish(t testing.TB, minScrapes int) {
	t.Helper()
	s.halt()
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("%d reads checked, %d unavailable while catching up (the last: %q), %s spent reading",
		s.scrapes, s.unavailable, s.why, s.busy.Round(time.Millisecond))
	if len(s.errs) > 0 {
		t.Errorf("the exposed metrics misbehaved while faults were injected:\n%v", errors.Join(s.errs...))
	}
	if s.scrapes < minScrapes {
		t.Errorf("only %d reads got through, want at least %d", s.scrapes, minScrapes)
	}
}

// watchNames watches the metrics named, and jetmetrics_rejected_total.
func watchNames(names ...string) func(string) bool {
	sort.Strings(names)
	return func(n string) bool {
		if n == "jetmetrics_rejected_total" {
			return true
		}
		i := sort.SearchStrings(names, n)
		return i < len(names) && names[i] == n
	}
}
