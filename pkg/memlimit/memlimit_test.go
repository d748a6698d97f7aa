package memlimit_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/memlimit"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want memlimit.Setting
	}{
		{"auto", memlimit.Setting{Auto: true}},
		{"AUTO", memlimit.Setting{Auto: true}},
		{"none", memlimit.Setting{}},
		{"0", memlimit.Setting{}},
		{"0MiB", memlimit.Setting{}},
		{"512MiB", memlimit.Setting{Bytes: 512 << 20}},
		{"512mib", memlimit.Setting{Bytes: 512 << 20}},
		{"2GiB", memlimit.Setting{Bytes: 2 << 30}},
		{"2Gi", memlimit.Setting{Bytes: 2 << 30}},
		{"1.5GB", memlimit.Setting{Bytes: 1_500_000_000}},
		{"1.5GiB", memlimit.Setting{Bytes: 3 << 29}},
		{"300M", memlimit.Setting{Bytes: 300_000_000}},
		{"300K", memlimit.Setting{Bytes: 300_000}},
		{"300mb", memlimit.Setting{Bytes: 300_000_000}},
		{"64KiB", memlimit.Setting{Bytes: 64 << 10}},
		{"1TB", memlimit.Setting{Bytes: 1e12}},
		{"1048576", memlimit.Setting{Bytes: 1 << 20}},
		{"1048576B", memlimit.Setting{Bytes: 1 << 20}},
		{" 256 MiB ", memlimit.Setting{Bytes: 256 << 20}},
		{"0.5KiB", memlimit.Setting{Bytes: 512}},
		{"1.0000001KB", memlimit.Setting{Bytes: 1000}}, // a fraction of a byte dropped
		{"9223372036854775807", memlimit.Setting{Bytes: math.MaxInt64}},
	} {
		got, err := memlimit.Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "want auto, none (or 0), or a size such as 512MiB"},
		{"automatic", "want auto, none"},
		{"-1", "want auto, none"},
		{"-512MiB", "want auto, none"},
		{"512XB", "want auto, none"},
		{"MiB", "want auto, none"},
		{"1e9", "want auto, none"},
		{"1.2.3GB", "want auto, none"},
		{"512 MiB extra", "want auto, none"},
		{"NaN", "want auto, none"},
		{"9223372036854775808", "at most 8EiB"},
		{"8EiB", "want auto, none"}, // no exbibytes: nobody has them
		{"9000000TiB", "at most 8EiB"},
		{"9000000.5TiB", "at most 8EiB"},
		{"512m", "ambiguous (milli in Kubernetes, MiB in Docker)"},
		{"2g", "write MiB or MB"},
		{"64k", "ambiguous"},
	} {
		got, err := memlimit.Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %+v, %v; want an error saying %q", tc.in, got, err, tc.want)
		}
	}
}

// writeFiles makes the files of a fake machine under a temporary root.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	v1Unlimited = "9223372036854771712\n" // what cgroup v1 writes for none
	gib         = 1 << 30
	host        = 16 * gib
)

func TestDecideAuto(t *testing.T) {
	auto := memlimit.Setting{Auto: true}
	for _, tc := range []struct {
		name      string
		files     map[string]string
		self      string
		gomem     string
		runtime   int64
		want      int64
		source    memlimit.Source
		file      string // the cgroup file it came from, under the root
		cgroupLim int64
	}{
		{name: "v2 number", files: map[string]string{"memory.max": "2147483648\n"},
			self: "0::/\n", want: 2 * gib * 9 / 10, source: memlimit.SourceCgroup, file: "memory.max", cgroupLim: 2 * gib},
		{name: "v2 max", files: map[string]string{"memory.max": "max\n"},
			self: "0::/\n", source: memlimit.SourceNone},
		{name: "v2 max beside a v1 limit: v2 decides", files: map[string]string{"memory.max": "max\n", "memory/memory.limit_in_bytes": "1073741824\n"},
			self: "0::/\n", source: memlimit.SourceNone},
		{name: "v2 the process's own cgroup (systemd MemoryMax)", files: map[string]string{
			"system.slice/jetmetrics.service/memory.max": "1073741824\n",
			"system.slice/memory.max":                    "max\n",
		}, self: "0::/system.slice/jetmetrics.service\n", want: gib * 9 / 10, source: memlimit.SourceCgroup, file: "system.slice/jetmetrics.service/memory.max", cgroupLim: gib},
		{name: "v2 an ancestor's limit is lower", files: map[string]string{
			"kubepods/pod1/c1/memory.max": "4294967296\n",
			"kubepods/pod1/memory.max":    "1073741824\n",
		}, self: "0::/kubepods/pod1/c1\n", want: gib * 9 / 10, source: memlimit.SourceCgroup, file: "kubepods/pod1/memory.max", cgroupLim: gib},
		{name: "v2 no membership file: the root's", files: map[string]string{"memory.max": "1073741824\n"},
			want: gib * 9 / 10, source: memlimit.SourceCgroup, file: "memory.max", cgroupLim: gib},
		{name: "v1 number", files: map[string]string{"memory/memory.limit_in_bytes": "1073741824\n"},
			self: "4:memory:/\n0::/\n", want: gib * 9 / 10, source: memlimit.SourceCgroup, file: "memory/memory.limit_in_bytes", cgroupLim: gib},
		{name: "v1 the process's own cgroup", files: map[string]string{
			"memory/memory.limit_in_bytes":            v1Unlimited,
			"memory/docker/abc/memory.limit_in_bytes": "536870912\n",
		}, self: "12:cpu,memory:/docker/abc\n0::/\n", want: 536870912 * 9 / 10, source: memlimit.SourceCgroup, file: "memory/docker/abc/memory.limit_in_bytes", cgroupLim: 512 << 20},
		{name: "v1 path not mounted here (container without a cgroup namespace): the root's", files: map[string]string{
			"memory/memory.limit_in_bytes": "536870912\n",
		}, self: "4:memory:/docker/abc\n", want: 536870912 * 9 / 10, source: memlimit.SourceCgroup, file: "memory/memory.limit_in_bytes", cgroupLim: 512 << 20},
		{name: "v1 huge", files: map[string]string{"memory/memory.limit_in_bytes": v1Unlimited},
			self: "4:memory:/\n", source: memlimit.SourceNone},
		{name: "v1 above the host's memory", files: map[string]string{"memory/memory.limit_in_bytes": "34359738368\n"},
			self: "4:memory:/\n", source: memlimit.SourceNone},
		{name: "missing files", files: map[string]string{"unrelated": ""},
			self: "0::/\n", source: memlimit.SourceNone},
		{name: "GOMEMLIMIT set", files: map[string]string{"memory.max": "2147483648\n"},
			self: "0::/\n", gomem: "700MiB", runtime: 700 << 20, want: 700 << 20, source: memlimit.SourceEnv},
		{name: "GOMEMLIMIT=off", files: map[string]string{"memory.max": "2147483648\n"},
			self: "0::/\n", gomem: "off", runtime: math.MaxInt64, source: memlimit.SourceEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeFiles(t, tc.files)
			m := memlimit.Machine{GOMEMLIMIT: tc.gomem, RuntimeLimit: tc.runtime, CgroupRoot: root, Self: tc.self, HostMemory: host}
			l, err := memlimit.Decide(auto, 0.9, m)
			if err != nil {
				t.Fatal(err)
			}
			if l.Bytes != tc.want || l.Source != tc.source {
				t.Errorf("limit %d from %s, want %d from %s", l.Bytes, l.Source, tc.want, tc.source)
			}
			wantFile := ""
			if tc.file != "" {
				wantFile = filepath.Join(root, tc.file)
			}
			if l.CgroupFile != wantFile || l.CgroupBytes != tc.cgroupLim {
				t.Errorf("cgroup limit %d in %q, want %d in %q", l.CgroupBytes, l.CgroupFile, tc.cgroupLim, wantFile)
			}
		})
	}
}

func TestDecideRatio(t *testing.T) {
	root := writeFiles(t, map[string]string{"memory.max": "1000000000\n"})
	m := memlimit.Machine{CgroupRoot: root, Self: "0::/\n"}
	for ratio, want := range map[float64]int64{1: 1e9, 0.5: 5e8, 0.9: 9e8} {
		l, err := memlimit.Decide(memlimit.Setting{Auto: true}, ratio, m)
		if err != nil || l.Bytes != want {
			t.Errorf("ratio %v: %d, %v; want %d", ratio, l.Bytes, err, want)
		}
	}
	root2 := writeFiles(t, map[string]string{"memory.max": "2147483648\n"})
	if l, _ := memlimit.Decide(memlimit.Setting{Auto: true}, 0.9, memlimit.Machine{CgroupRoot: root2}); l.String() != "1.8GiB" {
		t.Errorf("0.9 of 2GiB is %q (%d bytes), want 1.8GiB", l.String(), l.Bytes)
	}
	for _, ratio := range []float64{0, -0.5, 1.1, math.NaN()} {
		if l, err := memlimit.Decide(memlimit.Setting{Auto: true}, ratio, m); err == nil || l.Bytes != 0 {
			t.Errorf("ratio %v: %d, %v; want an error and no limit", ratio, l.Bytes, err)
		}
	}
}

// A size given is the limit whatever the machine says, and says which
// GOMEMLIMIT it overrides.
func TestDecideGiven(t *testing.T) {
	root := writeFiles(t, map[string]string{"memory.max": "2147483648\n"})
	m := memlimit.Machine{CgroupRoot: root, Self: "0::/\n", GOMEMLIMIT: "1GiB", RuntimeLimit: gib}
	l, err := memlimit.Decide(memlimit.Setting{Bytes: 300 << 20}, 0.9, m)
	if err != nil || l.Bytes != 300<<20 || l.Source != memlimit.SourceFlag || l.Overrides != "1GiB" {
		t.Errorf("given 300MiB: %+v, %v", l, err)
	}
	if l.String() != "300MiB" {
		t.Errorf("String() = %q, want 300MiB", l.String())
	}
	l, err = memlimit.Decide(memlimit.Setting{}, 0.9, m)
	if err != nil || l.Bytes != 0 || l.Source != memlimit.SourceFlag || l.String() != "none" {
		t.Errorf("given none: %+v, %v", l, err)
	}
}

// A cgroup file that exists but says nothing readable is an error, not a
// silent "no limit".
func TestDecideGarbledCgroupFile(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"v2": {"memory.max": "lots\n"},
		"v1": {"memory/memory.limit_in_bytes": "-\n"},
	} {
		root := writeFiles(t, files)
		l, err := memlimit.Decide(memlimit.Setting{Auto: true}, 0.9, memlimit.Machine{CgroupRoot: root, Self: "4:memory:/\n0::/\n"})
		if err == nil || !strings.Contains(err.Error(), root) || l.Bytes != 0 || l.Source != memlimit.SourceNone {
			t.Errorf("%s: %+v, %v; want an error naming the file and no limit", name, l, err)
		}
	}
}

// A membership path cannot lead out of the cgroup root.
func TestDecideStaysUnderRoot(t *testing.T) {
	outer := t.TempDir()
	if err := os.WriteFile(filepath.Join(outer, "memory.max"), []byte("1073741824\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(outer, "cg")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := memlimit.Decide(memlimit.Setting{Auto: true}, 0.9, memlimit.Machine{CgroupRoot: root, Self: "0::/../..\n"})
	if err != nil || l.Bytes != 0 {
		t.Errorf("%+v, %v; want no limit (the file above the root is not read)", l, err)
	}
}

// System reads this machine: its memory from /proc/meminfo (nodes run on
// Linux) and the runtime's limit as it stands.
func TestSystem(t *testing.T) {
	m := memlimit.System()
	if m.HostMemory < 64<<20 {
		t.Errorf("HostMemory = %d, want this machine's MemTotal", m.HostMemory)
	}
	if m.RuntimeLimit <= 0 || m.CgroupRoot != "/sys/fs/cgroup" {
		t.Errorf("RuntimeLimit %d, CgroupRoot %q", m.RuntimeLimit, m.CgroupRoot)
	}
	if _, err := memlimit.Decide(memlimit.Setting{Auto: true}, 0.9, m); err != nil {
		t.Errorf("auto on this machine: %v", err)
	}
}
