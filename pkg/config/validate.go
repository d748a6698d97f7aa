package config

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// MaxVolumeNameBytes bounds a volume's name.
const MaxVolumeNameBytes = 255

// minBatchBytes is the smallest limits.max-batch-bytes: a delta batch of
// one series must fit.
const minBatchBytes = 1024

// figures are the keys of Volume.Fields: the six figures of a result.
var figures = []string{
	"iops-read", "iops-write",
	"throughput-read", "throughput-write",
	"latency-read", "latency-write",
}

var backends = []string{BackendLocal, BackendPureStorage, BackendNetApp, BackendHTTPJSON}

// envVariable is a portable environment variable name.
var envVariable = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports the first setting that is wrong or that a backend
// would refuse, in one line naming the key (and, for a File from Load,
// the file and line). It reads each secret file to check that it is
// readable, never showing its content; secrets in environment variables
// are read when used.
func (f File) Validate() error {
	if err := f.checkObserver("observers.volume", f.Observers.Volume); err != nil {
		return err
	}
	if err := f.checkObserver("observers.probe", f.Observers.Probe); err != nil {
		return err
	}
	if f.Limits.MaxBatchBytes != 0 && f.Limits.MaxBatchBytes < minBatchBytes {
		return f.errorf("limits.max-batch-bytes", "%d is under the minimum of %d", f.Limits.MaxBatchBytes, minBatchBytes)
	}
	names := map[string]int{}
	for i, v := range f.Volumes {
		key := fmt.Sprintf("volumes[%d]", i)
		if j, dup := names[v.Name]; dup && v.Name != "" {
			other := fmt.Sprintf("volumes[%d]", j)
			if l := f.src.line(other); l > 0 {
				other += fmt.Sprintf(" (line %d)", l)
			}
			return f.errorf(key+".name", "%s is also the name of %s: names must be unique", quote(v.Name), other)
		}
		names[v.Name] = i
		if err := f.checkVolume(key, v); err != nil {
			return err
		}
	}
	return f.checkProbes()
}

// errorf is an Error at key, with the file and line when f was loaded.
func (f File) errorf(key, format string, args ...any) error {
	name := ""
	if f.src != nil {
		name = f.src.name
	}
	return errorf(name, f.src.line(key), key, format, args...)
}

func (f File) checkObserver(key string, o Observer) error {
	for _, d := range []struct {
		key      string
		negative bool
		v        string
	}{
		{"observe-interval", o.ObserveInterval < 0, o.ObserveInterval.String()},
		{"observe-timeout", o.ObserveTimeout < 0, o.ObserveTimeout.String()},
		{"cache-ttl", o.CacheTTL < 0, o.CacheTTL.String()},
		{"history-depth", o.HistoryDepth < 0, fmt.Sprint(o.HistoryDepth)},
		{"max-concurrent", o.MaxConcurrent < 0, fmt.Sprint(o.MaxConcurrent)},
	} {
		if d.negative {
			return f.errorf(key+"."+d.key, "%s is negative", d.v)
		}
	}
	o = o.WithDefaults()
	switch {
	case o.ObserveInterval < MinObserveInterval:
		return f.errorf(key+".observe-interval", "%s is under the minimum of %s", o.ObserveInterval, MinObserveInterval)
	case o.ObserveTimeout > o.ObserveInterval:
		return f.errorf(key+".observe-timeout", "%s is longer than observe-interval (%s): a poll must end before the next one starts", o.ObserveTimeout, o.ObserveInterval)
	}
	return nil
}

func (f File) checkVolume(key string, v Volume) error {
	switch {
	case v.Name == "":
		return f.errorf(key+".name", "required: the volume's name in the API and the metrics")
	case len(v.Name) > MaxVolumeNameBytes:
		return f.errorf(key+".name", "%d bytes long: want at most %d", len(v.Name), MaxVolumeNameBytes)
	case !utf8.ValidString(v.Name):
		return f.errorf(key+".name", "%s is not UTF-8 text", quote(v.Name))
	case v.Backend == "":
		return f.errorf(key+".backend", "required: one of %s", strings.Join(backends, ", "))
	}
	valid := false
	for _, b := range backends {
		valid = valid || v.Backend == b
	}
	if !valid {
		return f.errorf(key+".backend", "%s is not a backend kind (%s)", quote(v.Backend), suggest(v.Backend, backends))
	}
	if err := f.checkUnused(key, v); err != nil {
		return err
	}
	switch v.Backend {
	case BackendLocal:
		return f.checkLocal(key, v)
	case BackendPureStorage:
		if err := f.checkEndpoint(key, v); err != nil {
			return err
		}
		return f.checkSecret(key+".api-token", v.APIToken, true)
	case BackendNetApp:
		if err := f.checkEndpoint(key, v); err != nil {
			return err
		}
		if v.Username == "" {
			return f.errorf(key+".username", "required for a netapp volume: the ONTAP user")
		}
		return f.checkSecret(key+".password", v.Password, true)
	case BackendHTTPJSON:
		if err := f.checkEndpoint(key, v); err != nil {
			return err
		}
		for _, h := range sortedKeys(v.Headers) {
			hk := join(key+".headers", h)
			if !httpguts.ValidHeaderFieldName(h) {
				return f.errorf(hk, "not a valid HTTP header name")
			}
			if err := f.checkSecret(hk, v.Headers[h], true); err != nil {
				return err
			}
		}
		return f.checkFields(key, v.Fields)
	}
	return nil
}

// checkUnused refuses a key the volume's backend does not read: it is a
// mistake (a wrong backend, or a key meant for another volume).
func (f File) checkUnused(key string, v Volume) error {
	const (
		local = 1 << iota
		pure
		netapp
		httpJSON
	)
	kinds := map[string]int{BackendLocal: local, BackendPureStorage: pure, BackendNetApp: netapp, BackendHTTPJSON: httpJSON}
	for _, u := range []struct {
		key  string
		set  bool
		used int
	}{
		{"endpoint", v.Endpoint != "", pure | netapp | httpJSON},
		{"backend-volume", v.BackendVolume != "", pure | netapp},
		{"svm", v.SVM != "", netapp},
		{"username", v.Username != "", netapp},
		{"password", v.Password.IsSet(), netapp},
		{"api-token", v.APIToken.IsSet(), pure},
		{"headers", len(v.Headers) > 0, httpJSON},
		{"fields", len(v.Fields) > 0, httpJSON},
		{"tls", v.TLS != TLS{}, pure | netapp | httpJSON},
		{"device", v.Device != "", local},
		{"mount", v.Mount != "", local},
	} {
		if u.set && u.used&kinds[v.Backend] == 0 {
			var by []string
			for _, b := range backends {
				if u.used&kinds[b] != 0 {
					by = append(by, b)
				}
			}
			return f.errorf(key+"."+u.key, "not used by a %s volume (only by %s): remove it, or fix the backend", v.Backend, strings.Join(by, ", "))
		}
	}
	return nil
}

func (f File) checkLocal(key string, v Volume) error {
	switch {
	case v.Device == "" && v.Mount == "":
		return f.errorf(key, "a local volume needs device (a block device as /proc/diskstats names it, e.g. sda) or mount (an NFS mount point)")
	case v.Device != "" && v.Mount != "":
		return f.errorf(key+".mount", "give device or mount, not both")
	case strings.HasPrefix(v.Device, "/dev/"):
		return f.errorf(key+".device", "%s: give the name /proc/diskstats shows (%s), not its /dev path", quote(v.Device), strings.TrimPrefix(v.Device, "/dev/"))
	case strings.ContainsAny(v.Device, "/ \t"):
		return f.errorf(key+".device", "%s is not a block device name as /proc/diskstats shows it (e.g. sda, nvme0n1)", quote(v.Device))
	case v.Mount != "" && !strings.HasPrefix(v.Mount, "/"):
		return f.errorf(key+".mount", "%s is not an absolute path", quote(v.Mount))
	}
	return nil
}

// checkEndpoint checks a volume's endpoint and TLS. The URL is never
// shown: it may carry a token in its query.
func (f File) checkEndpoint(key string, v Volume) error {
	if v.Endpoint == "" {
		return f.errorf(key+".endpoint", "required for a %s volume: the backend's http(s) URL", v.Backend)
	}
	u, err := url.Parse(v.Endpoint)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return f.errorf(key+".endpoint", "want an http:// or https:// URL with a host")
	case u.User != nil:
		return f.errorf(key+".endpoint", "credentials in the URL are refused: give them as secrets (username and password, api-token, or headers)")
	case u.Scheme == "http" && v.TLS != TLS{}:
		return f.errorf(key+".tls", "set, but the endpoint is http://: use https:// or remove tls")
	}
	return f.checkTLS(key+".tls", v.TLS)
}

// checkTLS checks a client TLS setting and that its files can be read.
func (f File) checkTLS(key string, t TLS) error {
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		return f.errorf(key, "cert-file and key-file go together: give both or neither")
	case t.InsecureSkipVerify && (t.CAFile != "" || t.ServerName != ""):
		return f.errorf(key+".insecure-skip-verify", "turns verification off, so ca-file and server-name would be ignored: keep one or the other")
	}
	for _, p := range []struct{ key, path string }{
		{"ca-file", t.CAFile}, {"cert-file", t.CertFile}, {"key-file", t.KeyFile},
	} {
		if p.path == "" {
			continue
		}
		if err := readable(p.path); err != nil {
			return f.errorf(key+"."+p.key, "%v", err)
		}
	}
	return nil
}

// checkSecret checks that s names one source and, for a file, that it
// can be read and is not empty. No message shows the secret.
func (f File) checkSecret(key string, s Secret, required bool) error {
	switch {
	case !s.IsSet():
		if required {
			return f.errorf(key, "required: give {file: PATH} or {env: VARIABLE}")
		}
		return nil
	case s.File != "" && s.Env != "":
		return f.errorf(key, "give file or env, not both")
	case s.Env != "":
		if !envVariable.MatchString(s.Env) {
			// Not shown: it may be the credential, written where its
			// variable's name belongs.
			return f.errorf(key+".env", "not an environment variable name (letters, digits and _, not starting with a digit): is it the secret itself? Then change it")
		}
		return nil
	}
	if err := readable(s.File); err != nil {
		return f.errorf(key+".file", "%v", err)
	}
	if _, err := s.Value(); err != nil {
		return f.errorf(key+".file", "%v", err)
	}
	return nil
}

// readable checks that path is a regular file this process can open. A
// FIFO or a device is refused before opening it: that could block.
func readable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	return r.Close()
}

func (f File) checkFields(key string, fields map[string]string) error {
	if len(fields) == 0 {
		return f.errorf(key+".fields", "required for an http-json volume: map at least one of %s to a JSON path", strings.Join(figures, ", "))
	}
	for _, k := range sortedKeys(fields) {
		fk := join(key+".fields", k)
		known := false
		for _, fig := range figures {
			known = known || k == fig
		}
		if !known {
			return f.errorf(fk, "unknown figure (%s)", suggest(k, figures))
		}
		p := fields[k]
		if p == "" || strings.Contains("."+p+".", "..") {
			return f.errorf(fk, "%s is not a JSON path: want dot-separated keys, e.g. data.read.iops", quote(p))
		}
	}
	return nil
}

// sortedKeys orders a map's keys, so that the error reported is the
// same on every run.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
