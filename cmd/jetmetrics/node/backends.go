package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

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
