package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/httpjson"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/local"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/netapp"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/purestorage"
	pv "github.com/jetmetrics/jetmetrics/producers/volumes"
	"github.com/jetmetrics/jetmetrics/streams"
)

// backendMakers build a volume's backend by kind, reading its secrets
// (so at start, never from the configuration's text).
var backendMakers = map[string]func(config.Volume) (pv.Backend, error){
	config.BackendLocal:       localBackend,
	config.BackendPureStorage: pureStorageBackend,
	config.BackendNetApp:      netAppBackend,
	config.BackendHTTPJSON:    httpJSONBackend,
}

// httpJSONFields are the keys of an http-json volume's fields.
var httpJSONFields = []string{"iops-read", "iops-write", "throughput-read", "throughput-write", "latency-read", "latency-write"}

func localBackend(v config.Volume) (pv.Backend, error) {
	return local.New(local.Config{Device: v.Device, Mount: v.Mount})
}

func pureStorageBackend(v config.Volume) (pv.Backend, error) {
	token, err := v.APIToken.Value()
	if err != nil {
		return nil, fmt.Errorf("api-token: %w", err)
	}
	client, err := tlsClient(v.TLS)
	if err != nil {
		return nil, err
	}
	return purestorage.New(purestorage.Config{Endpoint: v.Endpoint, APIToken: token, Volume: backendVolume(v), Client: client})
}

func netAppBackend(v config.Volume) (pv.Backend, error) {
	password, err := v.Password.Value()
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	client, err := tlsClient(v.TLS)
	if err != nil {
		return nil, err
	}
	return netapp.New(netapp.Config{Endpoint: v.Endpoint, Username: v.Username, Password: password, Volume: backendVolume(v), SVM: v.SVM, Client: client})
}

func httpJSONBackend(v config.Volume) (pv.Backend, error) {
	headers := make(map[string]string, len(v.Headers))
	for k, s := range v.Headers {
		val, err := s.Value()
		if err != nil {
			return nil, fmt.Errorf("headers.%s: %w", k, err)
		}
		headers[k] = val
	}
	client, err := tlsClient(v.TLS)
	if err != nil {
		return nil, err
	}
	// A figure the mapping leaves out reads as 0 (path "", scale 0).
	field := func(key string) httpjson.Field { return httpjson.Field{Path: v.Fields[key]} }
	return httpjson.New(httpjson.Config{URL: v.Endpoint, Headers: headers, Client: client, Fields: httpjson.Mapping{
		IOPSRead: field("iops-read"), IOPSWrite: field("iops-write"),
		BytesReadPerSec: field("throughput-read"), BytesWritePerSec: field("throughput-write"),
		LatencyUsecRead: field("latency-read"), LatencyUsecWrite: field("latency-write"),
	}})
}

func backendVolume(v config.Volume) string {
	if v.BackendVolume != "" {
		return v.BackendVolume
	}
	return v.Name
}

// tlsClient is an HTTP client with c's TLS settings, or the default
// client when there are none.
func tlsClient(c config.TLS) (*http.Client, error) {
	if c == (config.TLS{}) {
		return http.DefaultClient, nil
	}
	tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // the operator's choice, documented
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca-file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca-file %s: no PEM certificate in it", c.CAFile)
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("tls: give both cert-file and key-file, or neither")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert-file, tls.key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tc
	return &http.Client{Transport: t}, nil
}

// checkVolumes refuses a volume list the node could not observe, naming
// the volume and the key at fault. It reads no secret: Run does, and says
// which one it could not read.
func (c Config) checkVolumes() error {
	obs := c.File.Observers.Volume.WithDefaults()
	switch {
	case obs.ObserveInterval < 0 || obs.ObserveTimeout < 0 || obs.CacheTTL < 0 || obs.HistoryDepth < 0 || obs.MaxConcurrent < 0:
		return errors.New("--config.file: observers.volume: durations and counts must be positive")
	case obs.ObserveTimeout > obs.ObserveInterval:
		return fmt.Errorf("--config.file: observers.volume.observe-timeout %s is longer than observe-interval %s: shorten it", obs.ObserveTimeout, obs.ObserveInterval)
	}
	seen := map[string]bool{}
	for i, v := range c.File.Volumes {
		at := fmt.Sprintf("--config.file: volumes[%d]", i)
		if _, err := streams.TargetToken(v.Name); err != nil {
			return fmt.Errorf("%s.name: %w", at, err)
		}
		at += fmt.Sprintf(" (%q)", v.Name)
		if seen[v.Name] {
			return fmt.Errorf("%s.name: listed twice: give each volume one entry", at)
		}
		seen[v.Name] = true
		if err := checkVolume(v); err != nil {
			return fmt.Errorf("%s.%w", at, err)
		}
	}
	return nil
}

func checkVolume(v config.Volume) error {
	missing := func(key string) error { return fmt.Errorf("%s: required for backend %s", key, v.Backend) }
	switch v.Backend {
	case config.BackendLocal:
		if (v.Device == "") == (v.Mount == "") {
			return errors.New("device: give a device (sda) or a mount (an NFS mount point), one of them")
		}
	case config.BackendPureStorage:
		switch {
		case v.Endpoint == "":
			return missing("endpoint")
		case !v.APIToken.IsSet():
			return missing("api-token")
		}
	case config.BackendNetApp:
		switch {
		case v.Endpoint == "":
			return missing("endpoint")
		case v.Username == "":
			return missing("username")
		case !v.Password.IsSet():
			return missing("password")
		}
	case config.BackendHTTPJSON:
		if v.Endpoint == "" {
			return missing("endpoint")
		}
		for k := range v.Fields {
			if !slices.Contains(httpJSONFields, k) {
				return fmt.Errorf("fields.%s: unknown figure: want %s", k, strings.Join(httpJSONFields, ", "))
			}
		}
	default:
		return fmt.Errorf("backend: %q: want %s, %s, %s or %s", v.Backend, config.BackendLocal, config.BackendPureStorage, config.BackendNetApp, config.BackendHTTPJSON)
	}
	return nil
}

// demoVolumes are the machine's disks as local volumes, for --demo
// without a configuration file's volumes.
func demoVolumes() ([]config.Volume, error) {
	devs, err := local.Devices("")
	if err != nil {
		return nil, err
	}
	out := make([]config.Volume, 0, len(devs))
	for _, d := range devs {
		out = append(out, config.Volume{Name: d, Backend: config.BackendLocal, Device: d})
	}
	return out, nil
}
