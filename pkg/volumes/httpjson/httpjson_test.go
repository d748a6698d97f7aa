package httpjson_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/httpjson"
)

func server(t *testing.T, status int, body string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0k" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

var mapping = httpjson.Mapping{
	IOPSRead:         httpjson.Field{Path: "data.volumes.1.read.ops"},
	IOPSWrite:        httpjson.Field{Path: "data.volumes.1.write.ops"},
	BytesReadPerSec:  httpjson.Field{Path: "data.volumes.1.read.mib", Scale: 1 << 20},
	BytesWritePerSec: httpjson.Field{Path: "data.volumes.1.write.mib", Scale: 1 << 20},
	LatencyUsecRead:  httpjson.Field{Path: "data.volumes.1.read.latency_ms", Scale: 1000},
	// No write latency at this endpoint: reported as 0.
}

const body = `{"data":{"volumes":[{"name":"a"},{"name":"b","read":{"ops":120,"mib":"2.5","latency_ms":0.75},"write":{"ops":30.5,"mib":1}}]}}`

func TestMapping(t *testing.T) {
	s := server(t, http.StatusOK, body)
	v, err := httpjson.New(httpjson.Config{URL: s.URL, Headers: map[string]string{"Authorization": "Bearer t0k"}, Fields: mapping})
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.PerformanceMetric(t.Context())
	want := volumes.Metric{IOPSRead: 120, IOPSWrite: 30.5, BytesReadPerSec: 2.5 * (1 << 20), BytesWritePerSec: 1 << 20, LatencyUsecRead: 750}
	if err != nil || m != want {
		t.Errorf("got %+v, %v; want %+v", m, err, want)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		header     string
		mapping    httpjson.Mapping
		garbage    bool
		contains   string
	}{
		{name: "unauthorized", body: body, status: 200, header: "Bearer nope", mapping: mapping, contains: "401 Unauthorized: {\"error\":\"unauthorized\"}"},
		{name: "server error", body: `{"error":"backend down"}`, status: 503, header: "Bearer t0k", mapping: mapping, contains: "backend down"},
		{name: "not json", body: `<html>`, status: 200, header: "Bearer t0k", mapping: mapping, garbage: true},
		{name: "missing key", body: `{"data":{"volumes":[{},{}]}}`, status: 200, header: "Bearer t0k", mapping: mapping, garbage: true, contains: `no key "read"`},
		{name: "index out of range", body: `{"data":{"volumes":[{}]}}`, status: 200, header: "Bearer t0k", mapping: mapping, garbage: true},
		{name: "not a number", body: strings.Replace(body, `"mib":"2.5"`, `"mib":"lots"`, 1), status: 200, header: "Bearer t0k", mapping: mapping, garbage: true},
		{name: "negative", body: strings.Replace(body, `"ops":120`, `"ops":-1`, 1), status: 200, header: "Bearer t0k", mapping: mapping, garbage: true},
	} {
		s := server(t, tc.status, tc.body)
		v, err := httpjson.New(httpjson.Config{URL: s.URL, Headers: map[string]string{"Authorization": tc.header}, Fields: tc.mapping})
		if err != nil {
			t.Fatal(err)
		}
		m, err := v.PerformanceMetric(t.Context())
		if err == nil || errors.Is(err, volumes.ErrGarbage) != tc.garbage || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%s: %+v, %v", tc.name, m, err)
		}
	}
	if _, err := httpjson.New(httpjson.Config{URL: "http://x", Fields: httpjson.Mapping{IOPSRead: httpjson.Field{Scale: 2}}}); err == nil {
		t.Error("a scale without a path accepted")
	}
}
