package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"

	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/httpjson"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/local"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/netapp"
	"github.com/jetmetrics/jetmetrics/pkg/volumes/purestorage"
	pv "github.com/jetmetrics/jetmetrics/producers/volumes"
	"github.com/jetmetrics/jetmetrics/streams"
)

// backendMakers build a volume's backend by kind, reading its secrets
// (so when the volume is added or changed, never from the configuration's
// text).
var backendMakers = map[string]func(config.Volume) (backend, error){
	config.BackendLocal:       localBackend,
	config.BackendPureStorage: pureStorageBackend,
	config.BackendNetApp:      netAppBackend,
	config.BackendHTTPJSON:    httpJSONBackend,
}

// backend is a volume's backend, with the HTTP client made for it alone
// (for its TLS settings; nil when it uses the shared default client).
type backend struct {
	pv.Backend
	own *http.Client
}

// close closes the idle connections of the backend's own client, once a
// reload has replaced or removed its volume: a poll still in flight
// finishes, and its connection closes with the transport's idle timeout.
func (b backend) close() {
	if b.own != nil {
		b.own.CloseIdleConnections()
	}
}

// made is b with the client it was made with, if its own.
func made(b pv.Backend, client *http.Client, err error) (backend, error) {
	if err != nil {
		return backend{}, err
	}
	if client == http.DefaultClient {
		client = nil
	}
	return backend{Backend: b, own: client}, nil
}

func localBackend(v config.Volume) (backend, error) {
	b, err := local.New(local.Config{Device: v.Device, Mount: v.Mount})
	return made(b, nil, err)
}

func pureStorageBackend(v config.Volume) (backend, error) {
	token, err := v.APIToken.Value()
	if err != nil {
		return backend{}, fmt.Errorf("api-token: %w", err)
	}
	client, err := tlsClient(v.TLS)
	if err != nil {
		return backend{}, err
	}
	b, err := purestorage.New(purestorage.Config{Endpoint: v.Endpoint, APIToken: token, Volume: backendVolume(v), Client: client})
	return made(b, client, err)
}

func netAppBackend(v config.Volume) (backend, error) {
	password, err := v.Password.Value()
	if err != nil {
		return backend{}, fmt.Errorf("password: %w", err)
	}
	client, err := tlsClient(v.TLS)
	if err != nil {
		return backend{}, err
	}
	b, err := netapp.New(netapp.Config{Endpoint: v.Endpoint, Username: v.Username, Password: password, Volume: backendVolume(v), SVM: v.SVM, Client: client})
	return made(b, client, err)
}

func httpJSONBackend(v config.Volume) (backend, error) {
	headers := make(map[string]string, len(v.Headers))
	for k, s := range v.Headers {
		val, err := s.Value()
		if err != nil {
			return backend{}, fmt.Errorf("headers.%s: %w", k, err)
		}
		headers[k] = val
	}
	client, err := tlsClient(v.TLS)
	if err != nil {
		return backend{}, err
	}
	// A figure the mapping leaves out reads as 0 (path "", scale 0).
	field := func(key string) httpjson.Field { return httpjson.Field{Path: v.Fields[key]} }
	b, err := httpjson.New(httpjson.Config{URL: v.Endpoint, Headers: headers, Client: client, Fields: httpjson.Mapping{
		IOPSRead: field("iops-read"), IOPSWrite: field("iops-write"),
		BytesReadPerSec: field("throughput-read"), BytesWritePerSec: field("throughput-write"),
		LatencyUsecRead: field("latency-read"), LatencyUsecWrite: field("latency-write"),
	}})
	return made(b, client, err)
}

// volumeBackends are the backends of the volumes observed, by name, with
// the definitions they were made from.
type volumeBackends struct {
	defs map[string]config.Volume
	made map[string]backend
}

// makeBackends makes the backends of vols, taking from cur (nil: none)
// those of the volumes whose definition has not changed, so that a reload
// rereads the secrets and TLS files of the new and changed volumes only.
// A failure closes what it made and names the volume.
func makeBackends(vols []config.Volume, cur *volumeBackends) (*volumeBackends, error) {
	next := &volumeBackends{defs: make(map[string]config.Volume, len(vols)), made: make(map[string]backend, len(vols))}
	for i, v := range vols {
		if cur != nil {
			if old, ok := cur.defs[v.Name]; ok && reflect.DeepEqual(old, v) {
				next.defs[v.Name], next.made[v.Name] = v, cur.made[v.Name]
				continue
			}
		}
		b, err := backendMakers[v.Backend](v)
		if err != nil {
			next.closeUnused(cur)
			return nil, fmt.Errorf("--config.file: volumes[%d] (%q): %w", i, v.Name, err)
		}
		next.defs[v.Name], next.made[v.Name] = v, b
	}
	return next, nil
}

// polled are the backends by volume, as the poller and the API take them.
func (b *volumeBackends) polled() map[string]pv.Backend {
	out := make(map[string]pv.Backend, len(b.made))
	for name, m := range b.made {
		out[name] = m.Backend
	}
	return out
}

// closeUnused closes the backends of b that next (nil: none) does not use.
func (b *volumeBackends) closeUnused(next *volumeBackends) {
	for name, m := range b.made {
		if next != nil {
			if n, ok := next.made[name]; ok && n.own == m.own {
				continue
			}
		}
		m.close()
	}
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

// checkVolumes checks what config.File.Validate (run first) leaves to
// the node: that each volume's name maps to a subject token.
func (c Config) checkVolumes() error {
	for i, v := range c.File.Volumes {
		if _, err := streams.TargetToken(v.Name); err != nil {
			return fmt.Errorf("--config.file: volumes[%d].name: %w", i, err)
		}
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
