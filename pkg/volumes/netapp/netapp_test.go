package netapp_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/netapp"
)

// fakeONTAP answers like ONTAP's REST API as NetApp documents it:
//   - GET /api/storage/volumes with basic auth, filtered by name and
//     svm.name, fields=metric, returns {"records": [...], "num_records": n,
//     "_links": {"self": ..., "next": {"href": ...}}}; each record's
//     metric has timestamp, duration ("PT15S"), status, and iops, latency
//     (microseconds) and throughput (bytes per second), each with read,
//     write, other and total
//     (https://docs.netapp.com/us-en/ontap-automation/rest/performance_metrics.html,
//     https://docs.netapp.com/us-en/ontap-restapi-97/ontap/get-storage-volumes-metrics.html,
//     and for the units and statuses
//     https://docs.netapp.com/us-en/ontap-restapi-9151/get-storage-luns-metrics-.html);
//     A call returns early, with a next link, when return_timeout passes
//     (same pages: "ONTAP returns earlier if either max records or the end
//     of the collection is reached");
//   - an error is {"error": {"message": ..., "code": ...}}, 401 without
//     valid credentials.
type fakeONTAP struct {
	// pageSize splits the records into pages linked by _links.next.
	pageSize int
	// slowFirst makes the first page empty with a next link, as ONTAP
	// answers when return_timeout (15 s by default) passes before it found
	// a record.
	slowFirst bool
	records   []map[string]any
	garbage   string
}

func rwot(r, w float64) map[string]any {
	return map[string]any{"read": r, "write": w, "other": 1, "total": r + w + 1}
}

func newFakeONTAP(t *testing.T) (*fakeONTAP, *httptest.Server) {
	f := &fakeONTAP{pageSize: 100}
	for i, name := range []string{"vol_a", "vol_b", "projects", "projects"} {
		svm := "svm1"
		if i == 3 {
			svm = "svm2"
		}
		f.records = append(f.records, map[string]any{
			"uuid": fmt.Sprintf("028baa66-41bd-11e9-81d5-00a0986138f%d", i),
			"name": name,
			"svm":  map[string]any{"name": svm, "uuid": "svm-uuid"},
			"metric": map[string]any{
				"timestamp": "2026-12-07T07:00:00Z", "duration": "PT15S", "status": "ok",
				"iops":       rwot(float64(100*(i+1)), 40),
				"latency":    rwot(350, 1200),
				"throughput": rwot(4096000, float64(1000*(i+1))),
				"_links":     map[string]any{},
			},
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/storage/volumes", f.volumes)
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return f, s
}

func writeErr(w http.ResponseWriter, status int, message, code string) {
	w.Header().Set("Content-Type", "application/hal+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": message, "code": code}})
}

func (f *fakeONTAP) volumes(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "monitor" || p != "secret" {
		writeErr(w, http.StatusUnauthorized, "not authorized for that command", "6691623")
		return
	}
	q := r.URL.Query()
	if q.Get("fields") == "" || !strings.Contains(q.Get("fields"), "metric") {
		writeErr(w, http.StatusBadRequest, "fields must ask for metric", "262179")
		return
	}
	if f.garbage != "" {
		w.Write([]byte(f.garbage))
		return
	}
	var match []map[string]any
	for _, rec := range f.records {
		if q.Get("name") != "" && rec["name"] != q.Get("name") {
			continue
		}
		if s := q.Get("svm.name"); s != "" && rec["svm"].(map[string]any)["name"] != s {
			continue
		}
		match = append(match, rec)
	}
	start := 0
	fmt.Sscan(q.Get("start"), &start)
	if f.slowFirst && q.Get("start") == "" {
		q.Set("start", "0")
		w.Header().Set("Content-Type", "application/hal+json")
		json.NewEncoder(w).Encode(map[string]any{"records": []any{}, "num_records": 0, "_links": map[string]any{
			"self": map[string]string{"href": r.URL.RequestURI()},
			"next": map[string]string{"href": "/api/storage/volumes?" + q.Encode()},
		}})
		return
	}
	end := min(start+f.pageSize, len(match))
	links := map[string]any{"self": map[string]string{"href": r.URL.RequestURI()}}
	if end < len(match) {
		q.Set("start", fmt.Sprint(end))
		links["next"] = map[string]string{"href": "/api/storage/volumes?" + q.Encode()}
	}
	w.Header().Set("Content-Type", "application/hal+json")
	json.NewEncoder(w).Encode(map[string]any{"records": match[start:end], "num_records": end - start, "_links": links})
}

func volume(t *testing.T, url, user, pass, name, svm string) *netapp.Volume {
	t.Helper()
	v, err := netapp.New(netapp.Config{Endpoint: url, Username: user, Password: pass, Volume: name, SVM: svm})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPerformance(t *testing.T) {
	f, s := newFakeONTAP(t)
	for _, pageSize := range []int{100, 1} {
		f.pageSize = pageSize
		for _, tc := range []struct {
			name, svm string
			want      volumes.Metric
		}{
			{"vol_b", "", volumes.Metric{IOPSRead: 200, IOPSWrite: 40, BytesReadPerSec: 4096000, BytesWritePerSec: 2000, LatencyUsecRead: 350, LatencyUsecWrite: 1200}},
			{"projects", "svm2", volumes.Metric{IOPSRead: 400, IOPSWrite: 40, BytesReadPerSec: 4096000, BytesWritePerSec: 4000, LatencyUsecRead: 350, LatencyUsecWrite: 1200}},
		} {
			m, err := volume(t, s.URL, "monitor", "secret", tc.name, tc.svm).PerformanceMetric(t.Context())
			if err != nil || m != tc.want {
				t.Errorf("page size %d, %s/%s: %+v, %v; want %+v", pageSize, tc.svm, tc.name, m, err, tc.want)
			}
		}
	}
}

// A first page that came back empty when ONTAP's return_timeout passed
// links to the rest: the client follows _links.next.
func TestPagination(t *testing.T) {
	f, s := newFakeONTAP(t)
	f.slowFirst = true
	m, err := volume(t, s.URL, "monitor", "secret", "vol_b", "svm1").PerformanceMetric(t.Context())
	if err != nil || m.IOPSRead != 200 {
		t.Fatalf("%+v, %v", m, err)
	}
}

func TestErrors(t *testing.T) {
	f, s := newFakeONTAP(t)
	_, err := volume(t, s.URL, "monitor", "wrong", "vol_a", "").PerformanceMetric(t.Context())
	if !errors.Is(err, netapp.ErrAuth) || !strings.Contains(err.Error(), "not authorized for that command (code 6691623)") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad password: %v", err)
	}
	if _, err := volume(t, s.URL, "monitor", "secret", "nope", "").PerformanceMetric(t.Context()); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown volume: %v", err)
	}
	f.records[0]["metric"].(map[string]any)["status"] = "inconsistent_delta_time"
	if _, err := volume(t, s.URL, "monitor", "secret", "vol_a", "").PerformanceMetric(t.Context()); err == nil || !strings.Contains(err.Error(), "inconsistent_delta_time") {
		t.Errorf("bad sample status: %v", err)
	}
	for _, body := range []string{`<html>`, `{"records":[{"name":"vol_a"}]}`,
		`{"records":[{"name":"vol_a","metric":{"status":"ok","iops":{"read":1,"write":1},"latency":{"read":1},"throughput":{"read":1,"write":1}}}]}`,
		`{"records":[],"_links":{"next":{"href":"http://elsewhere.example/api/storage/volumes"}}}`} {
		f.garbage = body
		if m, err := volume(t, s.URL, "monitor", "secret", "vol_a", "").PerformanceMetric(t.Context()); !errors.Is(err, volumes.ErrGarbage) {
			t.Errorf("body %s: %+v, %v; want ErrGarbage", body, m, err)
		}
	}
}
