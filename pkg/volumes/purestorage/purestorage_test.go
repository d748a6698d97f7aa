package purestorage_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/purestorage"
)

// fakeArray answers like a FlashArray's REST 2.x API as its public
// descriptions have it:
//   - POST /api/<v>/login with an "api-token" header returns the session in
//     the "x-auth-token" response header, 401 for a bad token
//     (https://kestra.io/plugins/plugin-ee-purestorage — "a static apiToken
//     is sent to POST /api/{version}/login (as the api-token request
//     header) and exchanged for a short-lived session token returned in the
//     x-auth-token response header"; the login operation as published in
//     https://raw.githubusercontent.com/api-evangelist/pure-storage/refs/heads/main/capabilities/flasharray-rest-authorization.yaml);
//   - GET /api/<v>/volumes/performance?names=... returns {"items": [...],
//     "continuation_token": ..., "more_items_remaining": ...,
//     "total_item_count": ...}, items with reads_per_sec, writes_per_sec,
//     read_bytes_per_sec, write_bytes_per_sec, usec_per_read_op and
//     usec_per_write_op; a further page is asked for with
//     continuation_token (https://kestra.io/plugins/plugin-ee-purestorage/pure-storage-flasharray-volumes/io.kestra.plugin.ee.purestorage.volumes.list
//     — "paginated using FlashArray's continuation-token mechanism");
//   - errors are {"errors": [{"context": ..., "message": ...}]}.
type fakeArray struct {
	t        *testing.T
	mu       sync.Mutex
	logins   int
	sessions map[string]bool
	items    map[string]map[string]any
	// emptyFirstPage makes the first page of every listing empty, with a
	// continuation token.
	emptyFirstPage bool
	// garbage replaces the listing's body.
	garbage string
}

func newFakeArray(t *testing.T) (*fakeArray, *httptest.Server) {
	f := &fakeArray{t: t, sessions: map[string]bool{}, items: map[string]map[string]any{
		"pod1::vol1": {
			"name": "pod1::vol1", "id": "8e0b6a23", "time": 1733554800000,
			"reads_per_sec": 1200.5, "writes_per_sec": 300, "read_bytes_per_sec": 52428800,
			"write_bytes_per_sec": 1048576, "usec_per_read_op": 250, "usec_per_write_op": 900.25,
			"queue_usec_per_read_op": 3, "san_usec_per_read_op": 10, "service_usec_per_read_op": 40,
		},
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/2.4/login", f.login)
	mux.HandleFunc("GET /api/2.4/volumes/performance", f.performance)
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return f, s
}

func writeErr(w http.ResponseWriter, status int, context, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"context": context, "message": message}}})
}

func (f *fakeArray) login(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("api-token") != "good-token" {
		writeErr(w, http.StatusUnauthorized, "", "Invalid credentials.")
		return
	}
	f.logins++
	s := "session-" + strings.Repeat("x", f.logins)
	f.sessions[s] = true
	w.Header().Set("x-auth-token", s)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"items":[{"username":"monitor"}]}`))
}

func (f *fakeArray) performance(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.sessions[r.Header.Get("x-auth-token")] {
		writeErr(w, http.StatusUnauthorized, "", "Session expired or invalid.")
		return
	}
	if f.garbage != "" {
		w.Write([]byte(f.garbage))
		return
	}
	name := r.URL.Query().Get("names")
	it, ok := f.items[name]
	if !ok {
		writeErr(w, http.StatusBadRequest, name, "Volume does not exist.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if f.emptyFirstPage && r.URL.Query().Get("continuation_token") == "" {
		json.NewEncoder(w).Encode(map[string]any{"items": []any{}, "continuation_token": "page-2", "more_items_remaining": true, "total_item_count": 1})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"items": []any{it}, "continuation_token": nil, "more_items_remaining": false, "total_item_count": 1})
}

func (f *fakeArray) expireSessions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.sessions)
}

func volume(t *testing.T, url, token, name string) *purestorage.Volume {
	t.Helper()
	v, err := purestorage.New(purestorage.Config{Endpoint: url, APIToken: token, Volume: name})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var want = volumes.Metric{
	IOPSRead: 1200.5, IOPSWrite: 300, BytesReadPerSec: 52428800, BytesWritePerSec: 1048576,
	LatencyUsecRead: 250, LatencyUsecWrite: 900.25,
}

// Polls share one session; an expired session is replaced by one login.
func TestPerformanceAndSession(t *testing.T) {
	f, s := newFakeArray(t)
	v := volume(t, s.URL, "good-token", "pod1::vol1")
	for range 3 {
		m, err := v.PerformanceMetric(t.Context())
		if err != nil || m != want {
			t.Fatalf("got %+v, %v; want %+v", m, err, want)
		}
	}
	if f.logins != 1 {
		t.Errorf("%d logins for 3 polls, want 1", f.logins)
	}
	f.expireSessions()
	if m, err := v.PerformanceMetric(t.Context()); err != nil || m != want {
		t.Fatalf("after the session expired: %+v, %v", m, err)
	}
	if f.logins != 2 {
		t.Errorf("%d logins after an expiry, want 2", f.logins)
	}
}

func TestPagination(t *testing.T) {
	f, s := newFakeArray(t)
	f.emptyFirstPage = true
	m, err := volume(t, s.URL, "good-token", "pod1::vol1").PerformanceMetric(t.Context())
	if err != nil || m != want {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestErrors(t *testing.T) {
	f, s := newFakeArray(t)
	_, err := volume(t, s.URL, "bad-token", "pod1::vol1").PerformanceMetric(t.Context())
	if !errors.Is(err, purestorage.ErrAuth) || !strings.Contains(err.Error(), "Invalid credentials.") || strings.Contains(err.Error(), "bad-token") {
		t.Errorf("bad token: %v; want ErrAuth with the array's message and without the token", err)
	}
	_, err = volume(t, s.URL, "good-token", "vol9").PerformanceMetric(t.Context())
	if err == nil || !strings.Contains(err.Error(), "vol9: Volume does not exist.") {
		t.Errorf("unknown volume: %v", err)
	}
	for _, body := range []string{`not json`, `{"items":[{"name":"pod1::vol1","reads_per_sec":1}]}`,
		`{"items":[{"name":"pod1::vol1","reads_per_sec":-1,"writes_per_sec":0,"read_bytes_per_sec":0,"write_bytes_per_sec":0,"usec_per_read_op":0,"usec_per_write_op":0}]}`} {
		f.garbage = body
		if m, err := volume(t, s.URL, "good-token", "pod1::vol1").PerformanceMetric(t.Context()); !errors.Is(err, volumes.ErrGarbage) {
			t.Errorf("body %s: %+v, %v; want ErrGarbage", body, m, err)
		}
	}
}
