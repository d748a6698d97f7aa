package natsserver_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// lockedBuffer collects log lines from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// remoteNames lists the servers s has routes to.
func remoteNames(t *testing.T, s *natsserver.Server) map[string]bool {
	t.Helper()
	rz, err := s.Server().Routez(&server.RoutezOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, r := range rz.Routes {
		out[r.RemoteName] = true
	}
	return out
}

// With route credentials set, a server of the same cluster name that
// routes to the cluster without them (or with wrong ones) is refused, and
// one with them joins; the password never reaches the logs.
func TestRouteAuthentication(t *testing.T) {
	const password = "route-s3cret-pw"
	pa, pg, pf, pw := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	url := func(p int) string { return fmt.Sprintf("nats://127.0.0.1:%d", p) }
	listen := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	var logs lockedBuffer
	start := func(name string, port int, routes []string, user, pw string) *natsserver.Server {
		s, err := natsserver.Start(natsserver.Config{
			Name: name, StoreDir: t.TempDir(), Port: -1,
			ClusterListen: listen(port), Routes: routes,
			ClusterUser: user, ClusterPassword: pw,
			Logger: zerolog.New(&logs).With().Str("server", name).Logger().Level(zerolog.DebugLevel),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		return s
	}
	a := start("a", pa, []string{url(pa), url(pg)}, "route", password)
	foreign := start("foreign", pf, []string{url(pa)}, "", "")
	wrong := start("wrong", pw, []string{url(pa)}, "route", "not-the-password")
	start("good", pg, []string{url(pa), url(pg)}, "route", password)

	harness.Eventually(t, 20*time.Second, func() error {
		if !remoteNames(t, a)["good"] {
			return fmt.Errorf("a has routes to %v, want one to good", remoteNames(t, a))
		}
		// Each refused server has tried and been told why.
		for _, name := range []string{"foreign", "wrong"} {
			refused := false
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, `"server":"`+name+`"`) && strings.Contains(strings.ToLower(line), "authorization violation") {
					refused = true
				}
			}
			if !refused {
				return fmt.Errorf("%s not refused yet", name)
			}
		}
		return nil
	})
	for _, s := range []*natsserver.Server{foreign, wrong} {
		if n := s.Server().NumRoutes(); n != 0 {
			t.Errorf("%s has %d routes, want 0", s.Config().Name, n)
		}
	}
	got := remoteNames(t, a)
	if got["foreign"] || got["wrong"] || len(got) != 1 {
		t.Errorf("a has routes to %v, want good only", got)
	}
	if strings.Contains(logs.String(), password) {
		t.Error("the route password is in the logs")
	}
}
