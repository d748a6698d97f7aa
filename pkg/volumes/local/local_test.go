package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/local"
)

// clock is a settable clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Two samples 10 s apart give exact rates; the second poll's rates cover
// the time since the first.
func TestDiskStatsRates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "diskstats")
	clk := &clock{now: time.Unix(1000, 0)}
	// reads, merged, sectors, ms, writes, merged, sectors, ms, then the rest.
	write(t, path, "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 254       0 vda 1000 5 20000 400 2000 9 80000 3000 0 0 0 0 0 0 0 0 0\n")
	v, err := local.New(local.Config{Device: "vda", DiskStats: path, Now: clk.Now, FirstWindow: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// The first poll samples twice, FirstWindow apart: on a clock that
	// stands still that is no rate.
	if m, err := v.PerformanceMetric(ctx); err == nil {
		t.Errorf("first poll on a stopped clock: %+v", m)
	}
	clk.now = clk.now.Add(10 * time.Second)
	write(t, path, " 254       0 vda 1500 5 30240 1400 2400 9 100480 7000 0 0 0 0 0 0 0 0 0\n")
	m, err := v.PerformanceMetric(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := volumes.Metric{
		IOPSRead: 50, IOPSWrite: 40,
		BytesReadPerSec: 10240 * 512 / 10, BytesWritePerSec: 20480 * 512 / 10,
		LatencyUsecRead: 1000 * 1000 / 500, LatencyUsecWrite: 4000 * 1000 / 400,
	}
	if m != want {
		t.Errorf("metric\n got %+v\nwant %+v", m, want)
	}

	// No I/O: zero rates and zero latency, not NaN.
	clk.now = clk.now.Add(10 * time.Second)
	if m, err = v.PerformanceMetric(ctx); err != nil || m != (volumes.Metric{}) {
		t.Errorf("idle: %+v, %v", m, err)
	}
	// Counters that went down (a device re-added) count from zero.
	clk.now = clk.now.Add(10 * time.Second)
	write(t, path, " 254       0 vda 10 0 80 20 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
	if m, err = v.PerformanceMetric(ctx); err != nil || m.IOPSRead != 1 || m.LatencyUsecRead != 2000 {
		t.Errorf("after a reset: %+v, %v", m, err)
	}
}

func TestMountStatsRates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mountstats")
	const head = `device rootfs mounted on / with fstype rootfs
device proc mounted on /proc with fstype proc
device 10.0.0.5:/export/projects mounted on /mnt/projects with fstype nfs4 statvers=1.1
	opts:	rw,vers=4.2,rsize=1048576,wsize=1048576
	per-op statistics
	        NULL: 1 1 0 44 24 0 0 0 0
`
	clk := &clock{now: time.Unix(1000, 0)}
	write(t, path, head+"	        READ: 100 100 0 15600 409600 10 200 300 0\n	       WRITE: 50 50 0 204800 8800 5 100 150 0\n")
	v, err := local.New(local.Config{Mount: "/mnt/projects", MountStats: path, Now: clk.Now, FirstWindow: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if m, err := v.PerformanceMetric(ctx); err == nil {
		t.Errorf("first poll on a stopped clock: %+v", m)
	}
	clk.now = clk.now.Add(2 * time.Second)
	write(t, path, head+"	        READ: 300 300 0 46800 1228800 30 600 1300 0\n	       WRITE: 70 70 0 286720 12320 7 140 350 0\n")
	m, err := v.PerformanceMetric(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := volumes.Metric{
		IOPSRead: 100, IOPSWrite: 10,
		BytesReadPerSec: 409600, BytesWritePerSec: 40960,
		LatencyUsecRead: 1000 * 1000 / 200, LatencyUsecWrite: 200 * 1000 / 20,
	}
	if m != want {
		t.Errorf("metric\n got %+v\nwant %+v", m, want)
	}
}

func TestNotFound(t *testing.T) {
	dir := t.TempDir()
	ds, ms := filepath.Join(dir, "diskstats"), filepath.Join(dir, "mountstats")
	write(t, ds, " 254 0 vda 1 0 0 0 0 0 0 0 0 0 0\n")
	write(t, ms, "device proc mounted on /proc with fstype proc\n")
	for _, cfg := range []local.Config{{Device: "sdz", DiskStats: ds}, {Mount: "/mnt/x", MountStats: ms}} {
		v, err := local.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.PerformanceMetric(t.Context()); !errors.Is(err, local.ErrNotFound) {
			t.Errorf("%+v: %v, want ErrNotFound", cfg, err)
		}
	}
	if _, err := local.New(local.Config{}); err == nil {
		t.Error("a config with neither device nor mount accepted")
	}
}

// On this machine: the disks of /proc/diskstats give real, plausible
// figures, and writing and syncing a file shows as writes.
func TestThisMachine(t *testing.T) {
	devs, err := local.Devices("")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) == 0 {
		t.Fatal("no disk with I/O in /proc/diskstats")
	}
	vols := make([]*local.Volume, len(devs))
	for i, d := range devs {
		if vols[i], err = local.New(local.Config{Device: d, FirstWindow: 300 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- churn(t.TempDir(), stop) }()
	wrote := false
	for i, v := range vols {
		m, err := v.PerformanceMetric(ctx)
		if err != nil {
			t.Fatalf("%s: %v", devs[i], err)
		}
		t.Logf("%s: %+v", devs[i], m)
		wrote = wrote || m.IOPSWrite > 0
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !wrote {
		t.Errorf("writing and syncing a file showed no writes on %v", devs)
	}
}

// churn writes and syncs a file until stop closes.
func churn(dir string, stop chan struct{}) error {
	f, err := os.Create(filepath.Join(dir, "churn"))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if _, err := f.Write(buf); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
}
