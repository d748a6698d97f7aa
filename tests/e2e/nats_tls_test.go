package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// connectTLS connects to url with the SDK's client options o and returns
// the error, closing a connection that was made.
func connectTLS(url string, o natsauth.ClientOptions) error {
	opts, err := o.NATSOptions()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	return nc.Flush()
}

// refusal is a client the server must refuse, and what the error says.
type refusal struct {
	want   string
	client natsauth.ClientOptions
}

// The embedded client listener serves TLS with --nats.tls.cert-file and
// --nats.tls.key-file: a client that trusts the CA connects, one that does
// not is told the certificate is not from an authority it knows. With
// --nats.tls.ca-file as well, a client must also present a certificate
// that CA signed. The node itself (in-process) needs none and is ready.
func TestNATSClientListenerTLS(t *testing.T) {
	pki := harness.TLSFiles(t)
	other := harness.TLSFiles(t)
	trusting := natsauth.ClientOptions{TLSCAFile: pki.CAFile}
	withCert := natsauth.ClientOptions{TLSCAFile: pki.CAFile, TLSCertFile: pki.ClientCertFile, TLSKeyFile: pki.ClientKeyFile}
	foreignCert := natsauth.ClientOptions{TLSCAFile: pki.CAFile, TLSCertFile: other.ClientCertFile, TLSKeyFile: other.ClientKeyFile}
	for _, tc := range []struct {
		name   string
		caFile string
		ok     []natsauth.ClientOptions
		// refused are clients the server refuses, with what the error
		// must say ("": any error; which TLS alert arrives first
		// depends on timing in TLS 1.3).
		refused []refusal
	}{
		{
			name:    "server TLS",
			ok:      []natsauth.ClientOptions{trusting, withCert},
			refused: []refusal{{"certificate signed by unknown authority", natsauth.ClientOptions{}}},
		},
		{
			name:   "mutual TLS",
			caFile: pki.CAFile,
			ok:     []natsauth.ClientOptions{withCert},
			refused: []refusal{
				{"certificate signed by unknown authority", natsauth.ClientOptions{TLSCertFile: pki.ClientCertFile, TLSKeyFile: pki.ClientKeyFile}},
				{"", trusting},
				{"", foreignCert},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rn := harness.StartNode(t, node.Config{
				NATSTLSCertFile: pki.CertFile, NATSTLSKeyFile: pki.KeyFile, NATSTLSCAFile: tc.caFile,
			})
			for i, o := range tc.ok {
				if err := connectTLS(rn.NATSURL(), o); err != nil {
					t.Errorf("client %d: %v", i, err)
				}
			}
			for _, r := range tc.refused {
				err := connectTLS(rn.NATSURL(), r.client)
				if err == nil || !strings.Contains(err.Error(), r.want) {
					t.Errorf("client %+v: error %v, want one saying %q", r.client, err, r.want)
				}
			}
		})
	}
}

// startTLSNATS starts a nats-server whose client listener requires TLS
// with a client certificate pki signed, as an external NATS would.
func startTLSNATS(t *testing.T, pki *harness.PKI) *natsserver.Server {
	t.Helper()
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.CertFile, KeyFile: pki.KeyFile, CaFile: pki.CAFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := natsserver.Start(natsserver.Config{Name: "external", StoreDir: t.TempDir(), Port: -1, TLS: tc, Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// A node given --nats.url=tls://… with --nats.tls.ca-file and a client
// certificate connects to an external NATS that requires both, and
// becomes ready; without the CA it fails its start saying why, within
// --nats.connect-timeout.
func TestNodeConnectsToTLSNATS(t *testing.T) {
	pki := harness.TLSFiles(t)
	ext := startTLSNATS(t, pki)
	url := strings.Replace(ext.ClientURL(), "nats://", "tls://", 1)

	rn := harness.StartNode(t, node.Config{
		Name: "tls-client", NATSURL: url,
		NATSTLSCAFile: pki.CAFile, NATSTLSCertFile: pki.ClientCertFile, NATSTLSKeyFile: pki.ClientKeyFile,
	})
	fams, err := harness.Scrape(rn.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) == 0 {
		t.Error("a node on TLS NATS serves no metrics")
	}
	if n := ext.Server().NumClients(); n == 0 {
		t.Error("the external server has no client: the node is not connected to it")
	}

	n, err := node.New(node.Config{
		Name: "untrusting", DataDir: t.TempDir(), WebListen: "127.0.0.1:0", NATSURL: url,
		NATSTLSCertFile: pki.ClientCertFile, NATSTLSKeyFile: pki.ClientKeyFile,
		NATSConnectTimeout: 2 * time.Second, Logger: harness.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = n.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "--nats.tls.ca-file") || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("start without the CA: %v, want an error saying the certificate's authority is unknown and naming --nats.tls.ca-file", err)
	}
}
