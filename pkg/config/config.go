package config

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"
)

// File is the content of a --config.file: what flags express badly.
// Every field is optional; a node started without a file has none of it.
type File struct {
	// Observers holds each observer's settings by kind.
	Observers Observers `yaml:"observers"`
	// Volumes are the storage volumes whose performance the volume
	// observer polls.
	Volumes []Volume `yaml:"volumes"`
	// Probes are the services whose latency the probe observer checks.
	Probes []Probe `yaml:"probes"`
	// Limits are the node's cardinality and input limits. Each is also a
	// flag (--limits.<key>); a flag or its JETMETRICS_* variable, when
	// given, overrides the key (see FlagValues).
	Limits Limits `yaml:"limits"`

	// src is where Load read the file, for errors to name file and line.
	src *source
}

// Observers holds the settings of each observer.
type Observers struct {
	Volume Observer `yaml:"volume"`
	Probe  Observer `yaml:"probe"`
}

// Observer is one observer's settings. Zero means the default.
type Observer struct {
	// ObserveInterval is the time between two polls of a target (default
	// 10 s, at least 1 s).
	ObserveInterval time.Duration `yaml:"observe-interval"`
	// ObserveTimeout bounds one poll (default 5 s, at most the interval).
	ObserveTimeout time.Duration `yaml:"observe-timeout"`
	// CacheTTL is how long after its observation a result is served from
	// the cache (default 30 s).
	CacheTTL time.Duration `yaml:"cache-ttl"`
	// HistoryDepth is how many results per target JETMETRICS_OBS keeps
	// (default 360: an hour at 10 s).
	HistoryDepth int64 `yaml:"history-depth"`
	// MaxConcurrent bounds the polls running at once on one node
	// (default 64).
	MaxConcurrent int `yaml:"max-concurrent"`
}

// Limits are the keys of the file's limits section, each the twin of the
// flag --limits.<key>. Zero means "not set here": the flag's value (its
// default, or what was given) applies.
type Limits struct {
	// MaxSeries is the most series a node holds.
	MaxSeries int `yaml:"max-series" flag:"limits.max-series"`
	// MaxSeriesPerMetric is the most series one metric holds.
	MaxSeriesPerMetric int `yaml:"max-series-per-metric" flag:"limits.max-series-per-metric"`
	// MaxProducers is the most producer ids whose batch marks a node
	// holds.
	MaxProducers int `yaml:"max-producers" flag:"limits.max-producers"`
	// MaxBatchBytes is the largest delta message accepted (at least 1024).
	MaxBatchBytes int `yaml:"max-batch-bytes" flag:"limits.max-batch-bytes"`
	// MaxLabels is the most labels a series may have.
	MaxLabels int `yaml:"max-labels" flag:"limits.max-labels"`
	// MaxLabelValueBytes is the longest label value in bytes.
	MaxLabelValueBytes int `yaml:"max-label-value-bytes" flag:"limits.max-label-value-bytes"`
}

// FlagValues are the values the file gives to keys that are also flags,
// by flag name, as the flag would parse them: the command sets each one
// whose flag was given neither on the command line nor through its
// JETMETRICS_* variable, so that a flag or variable overrides the file
// and the file overrides the flag's default. Keys the file leaves out are
// missing.
func (f File) FlagValues() map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(f.Limits)
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("flag")
		if name == "" || v.Field(i).IsZero() {
			continue
		}
		out[name] = fmt.Sprint(v.Field(i).Interface())
	}
	return out
}

// Observer defaults.
const (
	DefaultObserveInterval = 10 * time.Second
	MinObserveInterval     = time.Second
	DefaultObserveTimeout  = 5 * time.Second
	DefaultCacheTTL        = 30 * time.Second
	DefaultHistoryDepth    = 360
	DefaultMaxConcurrent   = 64
)

// Backend kinds of Volume.Backend.
const (
	BackendLocal       = "local"
	BackendPureStorage = "purestorage"
	BackendNetApp      = "netapp"
	BackendHTTPJSON    = "http-json"
)

// Volume is one storage volume and how to reach its backend.
type Volume struct {
	// Name is the volume's name in the API, the metrics and the subjects
	// (any string of 1 to 255 bytes; names that are not subject tokens are
	// mapped reversibly).
	Name string `yaml:"name"`
	// Backend is the backend kind: local, purestorage, netapp or
	// http-json.
	Backend string `yaml:"backend"`

	// Endpoint is the management URL (purestorage, netapp) or the URL to
	// GET (http-json).
	Endpoint string `yaml:"endpoint"`
	// BackendVolume is the volume's name on the backend (purestorage,
	// netapp; default Name).
	BackendVolume string `yaml:"backend-volume"`
	// SVM narrows a NetApp volume name to one SVM.
	SVM string `yaml:"svm"`
	// Username (netapp) and Password (netapp), APIToken (purestorage).
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	APIToken Secret `yaml:"api-token"`
	// Headers are sent with every http-json request, each value a secret
	// (an Authorization header, say).
	Headers map[string]Secret `yaml:"headers"`
	// Fields maps the six figures to JSON paths in an http-json answer:
	// keys iops-read, iops-write, throughput-read, throughput-write,
	// latency-read, latency-write; values dot-separated paths.
	Fields map[string]string `yaml:"fields"`
	// TLS configures HTTPS to the backend.
	TLS TLS `yaml:"tls"`

	// Device (a block device as /proc/diskstats names it) or Mount (an NFS
	// mount point) selects what a local volume measures.
	Device string `yaml:"device"`
	Mount  string `yaml:"mount"`
}

// Probe kinds of Probe.Kind.
const (
	ProbeHTTP = "http"
	ProbeTCP  = "tcp"
	ProbeNATS = "nats"
)

// Probe is one service the probe observer checks, and how.
type Probe struct {
	// Name is the service's name in the API, the metrics and the subjects
	// (1 to 255 bytes of UTF-8; names that are not subject tokens are
	// mapped reversibly, and the mapped token must fit 64 bytes).
	Name string `yaml:"name"`
	// Kind is http, tcp or nats.
	Kind string `yaml:"kind"`
	// Target is what to check: an http(s) URL (http), a host:port (tcp)
	// or a subject to send a request to (nats).
	Target string `yaml:"target"`

	// Method is the HTTP method (http; default GET).
	Method string `yaml:"method"`
	// ExpectStatus lists the HTTP status codes that count as up (http;
	// default any from 200 to 399).
	ExpectStatus []int `yaml:"expect-status"`
	// BodyMatch is a regular expression (RE2) the body must match (http;
	// a plain word is a substring match).
	BodyMatch string `yaml:"body-match"`
	// FollowRedirects follows up to 10 redirects (http; by default a
	// redirect is the answer and its status is checked).
	FollowRedirects bool `yaml:"follow-redirects"`
	// NATSURL is the NATS server to send the request through (nats;
	// default the node's own connection).
	NATSURL string `yaml:"nats-url"`
	// TLS configures HTTPS (http) or a tls:// nats-url's connection
	// (nats).
	TLS TLS `yaml:"tls"`
	// Timeout bounds this probe below observers.probe.observe-timeout
	// (default: that timeout).
	Timeout time.Duration `yaml:"timeout"`
}

// TLS configures a client's TLS.
type TLS struct {
	// CAFile holds PEM certificates that sign the server's (default: the
	// system's).
	CAFile string `yaml:"ca-file"`
	// CertFile and KeyFile are a client certificate.
	CertFile string `yaml:"cert-file"`
	KeyFile  string `yaml:"key-file"`
	// ServerName is the name to verify (default the URL's host).
	ServerName string `yaml:"server-name"`
	// InsecureSkipVerify turns verification off; say why in a comment.
	InsecureSkipVerify bool `yaml:"insecure-skip-verify"`
}

// Secret is a credential read from a file or an environment variable,
// never written inline in the file (so never in a log or an error).
// Exactly one of File and Env is set, or neither (no secret).
type Secret struct {
	File string `yaml:"file"`
	Env  string `yaml:"env"`
}

// maxSecretBytes bounds a secret file: a credential, not whatever a wrong
// path points at.
const maxSecretBytes = 64 << 10

// IsSet reports whether the secret names a source.
func (s Secret) IsSet() bool { return s.File != "" || s.Env != "" }

// Value reads the secret from its file (a trailing newline is dropped) or
// its environment variable. An error names the source, never the value.
func (s Secret) Value() (string, error) {
	switch {
	case s.File != "" && s.Env != "":
		return "", fmt.Errorf("secret has both file %q and env %q: give one", s.File, s.Env)
	case s.File != "":
		f, err := os.Open(s.File)
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", s.File, err)
		}
		if len(b) > maxSecretBytes {
			return "", fmt.Errorf("secret file %s: longer than %d bytes", s.File, maxSecretBytes)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.File)
		}
		return v, nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("secret variable %s is not set", s.Env)
		}
		return v, nil
	}
	return "", nil
}

// WithDefaults returns o with every zero field set to its default.
func (o Observer) WithDefaults() Observer {
	if o.ObserveInterval == 0 {
		o.ObserveInterval = DefaultObserveInterval
	}
	if o.ObserveTimeout == 0 {
		o.ObserveTimeout = min(DefaultObserveTimeout, o.ObserveInterval)
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.HistoryDepth == 0 {
		o.HistoryDepth = DefaultHistoryDepth
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	return o
}
