package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
)

// Config names one device or one NFS mount; exactly one of Device and
// Mount is set.
type Config struct {
	// Device is a block device's name as /proc/diskstats lists it
	// ("sda", "nvme0n1", "vda").
	Device string
	// Mount is an NFS mount point as /proc/self/mountstats lists it
	// ("/mnt/projects").
	Mount string
	// FirstWindow is how long the first poll waits between its two
	// samples, since a rate needs two (default 1 s; bounded by the poll's
	// context).
	FirstWindow time.Duration
	// DiskStats and MountStats are the files read (default
	// /proc/diskstats and /proc/self/mountstats).
	DiskStats, MountStats string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ErrNotFound is wrapped when the device or mount is not in the file.
var ErrNotFound = errors.New("volume not found")

// Volume is one local device or NFS mount.
type Volume struct {
	cfg Config

	mu   sync.Mutex
	prev sample
	have bool
}

// counters are cumulative: operations, bytes and milliseconds spent, for
// reads and writes.
type counters struct {
	readOps, writeOps     float64
	readBytes, writeBytes float64
	readMs, writeMs       float64
}

type sample struct {
	at time.Time
	c  counters
}

// New returns the volume cfg names.
func New(cfg Config) (*Volume, error) {
	if (cfg.Device == "") == (cfg.Mount == "") {
		return nil, errors.New("new local volume: set exactly one of device and mount")
	}
	if cfg.FirstWindow <= 0 {
		cfg.FirstWindow = time.Second
	}
	if cfg.DiskStats == "" {
		cfg.DiskStats = "/proc/diskstats"
	}
	if cfg.MountStats == "" {
		cfg.MountStats = "/proc/self/mountstats"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Volume{cfg: cfg}, nil
}

// Devices lists the whole disks of /proc/diskstats (path "" for the
// default) that have done any I/O: no partitions, loop, ram or zram
// devices. It is what a demo configures.
func Devices(path string) ([]string, error) {
	if path == "" {
		path = "/proc/diskstats"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 14 {
			continue
		}
		name := f[2]
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") || strings.HasPrefix(name, "dm-") {
			continue
		}
		if _, err := os.Stat("/sys/class/block/" + name + "/partition"); err == nil {
			continue
		}
		if f[3] == "0" && f[7] == "0" {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

// PerformanceMetric returns the rates since the previous poll; the first
// poll samples twice, FirstWindow apart.
func (v *Volume) PerformanceMetric(ctx context.Context) (volumes.Metric, error) {
	cur, err := v.sample()
	if err != nil {
		return volumes.Metric{}, err
	}
	v.mu.Lock()
	prev, have := v.prev, v.have
	v.prev, v.have = cur, true
	v.mu.Unlock()
	if !have {
		t := time.NewTimer(v.cfg.FirstWindow)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return volumes.Metric{}, fmt.Errorf("first sample of %s: %w", v.name(), ctx.Err())
		case <-t.C:
		}
		prev = cur
		if cur, err = v.sample(); err != nil {
			return volumes.Metric{}, err
		}
		v.mu.Lock()
		v.prev = cur
		v.mu.Unlock()
	}
	return rates(prev, cur)
}

func (v *Volume) name() string {
	if v.cfg.Device != "" {
		return "device " + v.cfg.Device
	}
	return "nfs mount " + v.cfg.Mount
}

// rates turns two samples into a Metric. Counters that went down (a
// remount, a wrap) are treated as starting from zero.
func rates(prev, cur sample) (volumes.Metric, error) {
	dt := cur.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		return volumes.Metric{}, fmt.Errorf("samples %s apart: no rate", cur.at.Sub(prev.at))
	}
	d := func(a, b float64) float64 {
		if b < a {
			return b
		}
		return b - a
	}
	p, c := prev.c, cur.c
	rOps, wOps := d(p.readOps, c.readOps), d(p.writeOps, c.writeOps)
	lat := func(ms, ops float64) float64 {
		if ops == 0 {
			return 0
		}
		return ms * 1000 / ops
	}
	m := volumes.Metric{
		IOPSRead:         rOps / dt,
		IOPSWrite:        wOps / dt,
		BytesReadPerSec:  d(p.readBytes, c.readBytes) / dt,
		BytesWritePerSec: d(p.writeBytes, c.writeBytes) / dt,
		LatencyUsecRead:  lat(d(p.readMs, c.readMs), rOps),
		LatencyUsecWrite: lat(d(p.writeMs, c.writeMs), wOps),
	}
	return m, m.Check()
}

func (v *Volume) sample() (sample, error) {
	at := v.cfg.Now()
	var c counters
	var err error
	if v.cfg.Device != "" {
		c, err = readDiskStats(v.cfg.DiskStats, v.cfg.Device)
	} else {
		c, err = readMountStats(v.cfg.MountStats, v.cfg.Mount)
	}
	return sample{at: at, c: c}, err
}

// readDiskStats reads one device's line of /proc/diskstats: after major,
// minor and name, reads completed, reads merged, sectors read, ms reading,
// writes completed, writes merged, sectors written, ms writing (sectors
// are 512 bytes, whatever the device's own sector size).
func readDiskStats(path, device string) (counters, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return counters{}, fmt.Errorf("read %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 11 || f[2] != device {
			continue
		}
		var n [8]float64
		for i := range n {
			if n[i], err = strconv.ParseFloat(f[3+i], 64); err != nil {
				return counters{}, fmt.Errorf("parse %s line of %s: %w", device, path, err)
			}
		}
		return counters{
			readOps: n[0], readBytes: n[2] * 512, readMs: n[3],
			writeOps: n[4], writeBytes: n[6] * 512, writeMs: n[7],
		}, nil
	}
	return counters{}, fmt.Errorf("%w: device %s in %s", ErrNotFound, device, path)
}

// readMountStats reads the READ and WRITE lines of one NFS mount's
// per-op statistics in /proc/self/mountstats: ops, transmissions,
// major timeouts, bytes sent, bytes received, queue ms, rtt ms, execute
// ms. Read bytes are those received, written bytes those sent; latency is
// the execute time, from the request's queueing to its reply.
func readMountStats(path, mount string) (counters, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return counters{}, fmt.Errorf("read %s: %w", path, err)
	}
	var c counters
	in, found, read, write := false, false, false, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "device ") {
			// device SERVER:/EXPORT mounted on MOUNT with fstype nfs4 statvers=1.1
			f := strings.Fields(line)
			in = len(f) >= 8 && f[3] == "on" && f[4] == mount && strings.HasPrefix(f[7], "nfs")
			found = found || in
			continue
		}
		if !in {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 9 || (f[0] != "READ:" && f[0] != "WRITE:") {
			continue
		}
		var n [8]float64
		for i := range n {
			if n[i], err = strconv.ParseFloat(f[1+i], 64); err != nil {
				return counters{}, fmt.Errorf("parse %s %s of %s: %w", mount, f[0], path, err)
			}
		}
		if f[0] == "READ:" {
			c.readOps, c.readBytes, c.readMs, read = n[0], n[4], n[7], true
		} else {
			c.writeOps, c.writeBytes, c.writeMs, write = n[0], n[3], n[7], true
		}
	}
	switch {
	case !found:
		return counters{}, fmt.Errorf("%w: nfs mount %s in %s", ErrNotFound, mount, path)
	case !read || !write:
		return counters{}, fmt.Errorf("nfs mount %s in %s has no per-op READ and WRITE statistics", mount, path)
	}
	return c, nil
}
