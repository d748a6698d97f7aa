package node

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// makeBackends, as a reload uses it, keeps the backend of a volume whose
// definition is unchanged (its client and connection too), makes one for
// a changed or added volume, and closeUnused closes the connections of
// the backends replaced or removed, not of those kept.
func TestMakeBackendsKeepsUnchangedAndClosesReplaced(t *testing.T) {
	closed := make(chan net.Conn, 16)
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `{"r": 1, "w": 2}`)
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed <- c
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	vol := func(name, field string) config.Volume {
		return config.Volume{Name: name, Backend: config.BackendHTTPJSON, Endpoint: srv.URL, TLS: config.TLS{CAFile: ca},
			Fields: map[string]string{"iops-read": field}}
	}
	poll := func(b *volumeBackends, names ...string) {
		t.Helper()
		for _, name := range names {
			if _, err := b.made[name].PerformanceMetric(t.Context()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	cur, err := makeBackends([]config.Volume{vol("kept", "r"), vol("changed", "r"), vol("removed", "r")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cur.closeUnused(nil) })
	poll(cur, "kept", "changed", "removed")

	next, err := makeBackends([]config.Volume{vol("kept", "r"), vol("changed", "w"), vol("added", "r")}, cur)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.closeUnused(nil) })
	if next.made["kept"].own == nil || next.made["kept"].own != cur.made["kept"].own {
		t.Error("the unchanged volume got a new backend")
	}
	if next.made["changed"].own == cur.made["changed"].own {
		t.Error("the changed volume kept its backend")
	}
	if len(next.polled()) != 3 {
		t.Errorf("%d backends polled, want 3", len(next.polled()))
	}
	select {
	case c := <-closed:
		t.Fatalf("connection %v closed before any backend was", c.RemoteAddr())
	default:
	}

	cur.closeUnused(next)
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for range 2 {
		select {
		case <-closed:
		case <-timeout.C:
			t.Fatal("the replaced and the removed backends' connections are still open")
		}
	}
	// The kept backend's connection is still open: polling again opens
	// no new one.
	poll(next, "kept")
	if n := opened.Load(); n != 3 {
		t.Errorf("%d connections opened, want 3: the kept backend's was closed", n)
	}

	missing := vol("secret", "r")
	missing.Headers = map[string]config.Secret{"Authorization": {File: filepath.Join(t.TempDir(), "none")}}
	if _, err := makeBackends([]config.Volume{vol("kept", "r"), missing}, next); err == nil {
		t.Error("a volume whose secret cannot be read got a backend")
	}
}
