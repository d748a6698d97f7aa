package natsserver_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// routeTLS is the routes' TLS as the node builds it from
// --nats.cluster.tls.*: p's certificate, verified both ways by p's CA.
func routeTLS(t *testing.T, p *harness.PKI) *tls.Config {
	t.Helper()
	c, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: p.CertFile, KeyFile: p.KeyFile, CaFile: p.CAFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// localMsgs is how many messages s's own replica of stream holds.
func localMsgs(s *natsserver.Server, stream string) (uint64, error) {
	info, err := s.Server().Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return 0, err
	}
	for _, a := range info.AccountDetails {
		for _, st := range a.Streams {
			if st.Name == stream {
				return st.State.Msgs, nil
			}
		}
	}
	return 0, fmt.Errorf("%s holds no replica of %s", s.Config().Name, stream)
}

// A cluster whose routes use mutual TLS and route credentials forms and
// replicates an R3 stream to every node. A server with the cluster's name
// and its route password is refused when its certificate comes from
// another CA, and when it does not speak TLS at all.
func TestRouteMutualTLS(t *testing.T) {
	const password = "route-tls-s3cret"
	pki := harness.TLSFiles(t)
	nodes := harness.NATSClusterWith(t, 3, func(c *natsserver.Config) {
		c.ClusterUser, c.ClusterPassword = "route", password
		c.ClusterTLS = routeTLS(t, pki)
	})

	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TLS", Subjects: []string{"tls.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "tls.a", []byte("over tls routes")); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		for _, s := range nodes {
			n, err := localMsgs(s, "TLS")
			if err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("%s holds %d messages, want 1", s.Config().Name, n)
			}
		}
		return nil
	})

	var logs lockedBuffer
	foreign := func(name string, tc *tls.Config) *natsserver.Server {
		s, err := natsserver.Start(natsserver.Config{
			Name: name, StoreDir: t.TempDir(), Port: -1,
			ClusterListen: "127.0.0.1:0", Routes: []string{nodes[0].ClusterURL()},
			ClusterUser: "route", ClusterPassword: password, ClusterTLS: tc,
			Logger: zerolog.New(&logs).With().Str("server", name).Logger().Level(zerolog.DebugLevel),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		return s
	}
	otherCA := foreign("other-ca", routeTLS(t, harness.TLSFiles(t)))
	plain := foreign("plain", nil)

	// Each has tried and been dropped: the other CA's server cannot verify
	// the cluster's certificate (nor the cluster its), the plain one gets
	// no further than the TLS handshake it does not speak.
	harness.Eventually(t, 20*time.Second, func() error {
		var missing []string
		for name, want := range map[string]string{"other-ca": "certificate signed by unknown authority", "plain": "router connection closed"} {
			tries := 0
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, `"server":"`+name+`"`) && strings.Contains(strings.ToLower(line), want) {
					tries++
				}
			}
			if tries < 2 {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%v not refused twice yet", missing)
		}
		return nil
	})
	var errs []error
	for _, s := range nodes {
		for name := range remoteNames(t, s) {
			if name == "other-ca" || name == "plain" {
				errs = append(errs, fmt.Errorf("%s has a route to %s", s.Config().Name, name))
			}
		}
	}
	// Neither sees the cluster's stream: they never joined its JetStream.
	for _, s := range []*natsserver.Server{otherCA, plain} {
		if err := streamVisible(s, "TLS"); err == nil {
			errs = append(errs, fmt.Errorf("%s sees stream TLS", s.Config().Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), password) {
		t.Error("the route password is in the logs")
	}
}

// streamVisible returns nil if a client of s gets stream's info within a
// second.
func streamVisible(s *natsserver.Server, stream string) error {
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.Stream(ctx, stream)
	return err
}
