package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// apiStatus is the volumes part of GET /api/v1/status.
type apiStatus struct {
	Volumes []struct {
		Volume     string     `json:"volume"`
		Leader     string     `json:"leader"`
		Status     string     `json:"status"`
		Stale      bool       `json:"stale"`
		ObservedAt *time.Time `json:"observed_at"`
		AgeSeconds *float64   `json:"age_seconds"`
		LastError  string     `json:"last_error"`
	} `json:"volumes"`
	VolumesMore      int               `json:"volumes_more"`
	VolumesUnhealthy int               `json:"volumes_unhealthy"`
	Errors           map[string]string `json:"errors"`
}

func getStatus(url string) (apiStatus, error) {
	var st apiStatus
	code, _, body, err := fetchPage(url+"/api/v1/status", "", "")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("GET /api/v1/status: %d: %s", code, body)
	}
	return st, json.Unmarshal([]byte(body), &st)
}

// With more volumes than the cap, the failing one, last in the file, is
// among those listed (first), and the rest are counted.
func TestStatusVolumesCapKeepsFailingOnes(t *testing.T) {
	t.Cleanup(node.SetStatusMaxRows(2))
	tg := newStatusTargets(t)
	failing := config.Volume{Name: "zz-failing", Backend: config.BackendHTTPJSON, Endpoint: tg.down.URL, Fields: map[string]string{"iops-read": "r"}}
	rn := harness.StartNode(t, node.Config{File: config.File{
		Observers: fastObservers,
		Volumes:   []config.Volume{tg.volume("a"), tg.volume("b"), failing},
	}})
	harness.Eventually(t, 20*time.Second, func() error {
		st, err := getStatus(rn.URL)
		if err != nil {
			return err
		}
		switch {
		case len(st.Errors) > 0:
			return fmt.Errorf("errors %q", st.Errors)
		case len(st.Volumes) != 2 || st.VolumesMore != 1:
			return fmt.Errorf("%d volumes listed, %d more: want the cap of 2 and 1 more", len(st.Volumes), st.VolumesMore)
		case st.Volumes[0].Volume != "zz-failing" || st.Volumes[0].Status != "error" || st.Volumes[0].LastError == "":
			return fmt.Errorf("first volume %+v, want zz-failing with its error", st.Volumes[0])
		case st.Volumes[1].Volume != "a" || st.Volumes[1].Status != "ok":
			return fmt.Errorf("second volume %+v, want a, ok (the file's order after the failing ones)", st.Volumes[1])
		case st.VolumesUnhealthy != 1:
			return fmt.Errorf("%d unhealthy, want 1", st.VolumesUnhealthy)
		}
		return nil
	})
}

// A volume whose last result left the cache (its TTL of 1 s passed, and
// the next poll is up to 5 s away) is stale, with no status or age:
// nothing recent is known of it.
func TestStatusVolumeStale(t *testing.T) {
	tg := newStatusTargets(t)
	rn := harness.StartNode(t, node.Config{File: config.File{
		Observers: config.Observers{Volume: config.Observer{ObserveInterval: 5 * time.Second, ObserveTimeout: 2 * time.Second, CacheTTL: time.Second}},
		Volumes:   []config.Volume{tg.volume("quiet")},
	}})
	harness.Eventually(t, 30*time.Second, func() error {
		// A poll's result is in the stream (and left the cache).
		code, _, body, err := fetchPage(rn.URL+"/api/v1/volumes/quiet/performance-metric/history?limit=1", "", "")
		if err != nil {
			return err
		}
		var h struct {
			Results []struct {
				Status string `json:"status"`
			} `json:"results"`
		}
		if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK || len(h.Results) != 1 || h.Results[0].Status != "ok" {
			return fmt.Errorf("history: %d %s, want the poll's result", code, body)
		}
		st, err := getStatus(rn.URL)
		if err != nil {
			return err
		}
		if len(st.Errors) > 0 || len(st.Volumes) != 1 {
			return fmt.Errorf("errors %q, volumes %+v", st.Errors, st.Volumes)
		}
		v := st.Volumes[0]
		if !v.Stale {
			return fmt.Errorf("volume %+v, want it stale", v)
		}
		if v.Status != "" || v.AgeSeconds != nil || v.ObservedAt != nil || v.Leader == "" || st.VolumesUnhealthy != 1 {
			return fmt.Errorf("stale volume %+v (%d unhealthy), want no status or age, its leader, counted", v, st.VolumesUnhealthy)
		}
		return nil
	})
}
