package natsserver

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

const (
	defaultHost        = "127.0.0.1"
	defaultClusterName = "jetmetrics"

	// readyTimeout bounds how long Start waits for the listeners.
	readyTimeout = 10 * time.Second
)

// Config describes one embedded nats-server. The zero value of every field
// except StoreDir is usable.
type Config struct {
	// Name is the server name. JetStream identifies a cluster node by a
	// hash of it, so a restarted node must keep its name; Config returns
	// the one picked. Default: "jetmetrics-" and random hex.
	Name string
	// StoreDir is the JetStream store directory. Required.
	StoreDir string
	// Host is the client listen host. Default "127.0.0.1".
	Host string
	// Port is the client port: 0 means 4222 (the NATS default), -1 picks a
	// free random port.
	Port int
	// DontListen accepts in-process connections only; Host and Port are
	// ignored and ClientURL is empty.
	DontListen bool
	// ClusterName names the cluster when ClusterListen is set. Default
	// "jetmetrics".
	ClusterName string
	// ClusterListen is the "host:port" the route listener binds; empty
	// means no cluster. Port 0 or -1 picks a free random port.
	ClusterListen string
	// Routes are the route URLs of the cluster's nodes, such as
	// "nats://127.0.0.1:6222". Required when ClusterListen is set. List
	// every node, this one included (the server ignores a route to
	// itself): a new cluster sizes its JetStream meta group, and so its
	// quorum, from the number of routes.
	Routes []string
	// ClusterUser and ClusterPassword, when set, are the credentials every
	// route connecting to ClusterListen must present, and the ones this
	// server's own routes carry (added to each of Routes that has none).
	// nats-server redacts them from its log lines.
	ClusterUser, ClusterPassword string
	// ClusterTLS, when set, secures the routes in both directions: the
	// listener serves it and requires a client certificate its ClientCAs
	// verify, and this server's routes present its certificate and verify
	// the peers' with the same CAs.
	ClusterTLS *tls.Config
	// Users and Nkeys authenticate clients, each with its permissions
	// (nil: everything) and allowed connection types (such as
	// IN_PROCESS only); both empty means clients need no credentials.
	// Passwords may be bcrypt hashes ("$2a$…"). In-process connections
	// authenticate too.
	Users []*server.User
	Nkeys []*server.NkeyUser
	// TLS, when set, serves TLS on the client listener; with ClientAuth
	// tls.RequireAndVerifyClientCert clients must present a certificate
	// ClientCAs verify. In-process connections need none.
	TLS *tls.Config
	// MaxPayload is the largest message accepted, in bytes. Default: the
	// NATS default (1 MiB).
	MaxPayload int32
	// SyncAlways makes JetStream fsync every write instead of every two
	// minutes.
	SyncAlways bool
	// Logger receives the server's log lines at matching levels, each
	// with the server's name as "node": give it a logger without one. The
	// zero value discards them.
	Logger zerolog.Logger
}

// withDefaults returns a copy of c with defaults applied, or an error if c
// cannot describe a server.
func (c Config) withDefaults() (Config, error) {
	if c.StoreDir == "" {
		return c, errors.New("config: store dir is required")
	}
	if c.Name == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return c, fmt.Errorf("config: random name: %w", err)
		}
		c.Name = "jetmetrics-" + hex.EncodeToString(b[:])
	}
	if c.Host == "" {
		c.Host = defaultHost
	}
	if c.Port < -1 || c.Port > 65535 {
		return c, fmt.Errorf("config: port %d out of range", c.Port)
	}
	if c.MaxPayload < 0 {
		return c, fmt.Errorf("config: max payload %d is negative", c.MaxPayload)
	}
	c.Routes = append([]string(nil), c.Routes...)
	if (c.ClusterUser == "") != (c.ClusterPassword == "") {
		return c, errors.New("config: cluster user and cluster password go together")
	}
	if c.ClusterListen == "" {
		if len(c.Routes) > 0 {
			return c, errors.New("config: routes need a cluster listen address")
		}
		return c, nil
	}
	if c.ClusterName == "" {
		c.ClusterName = defaultClusterName
	}
	if _, _, err := c.clusterHostPort(); err != nil {
		return c, err
	}
	// JetStream refuses to form a cluster without configured routes; say so
	// here rather than through a log line from inside the server.
	if len(c.Routes) == 0 {
		return c, errors.New("config: a cluster needs at least one route")
	}
	for _, r := range c.Routes {
		if _, err := url.Parse(r); err != nil {
			return c, errors.New("config: a route is not a URL")
		}
	}
	return c, nil
}

// clusterHostPort splits ClusterListen into host and port.
func (c Config) clusterHostPort() (string, int, error) {
	host, ps, err := net.SplitHostPort(c.ClusterListen)
	if err != nil {
		return "", 0, fmt.Errorf("config: cluster listen %q: %w", c.ClusterListen, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("config: cluster listen %q: bad port", c.ClusterListen)
	}
	if host == "" {
		host = defaultHost
	}
	return host, port, nil
}

// listenAddrs describes the addresses c listens on, for error messages.
func (c Config) listenAddrs() string {
	var addrs []string
	if !c.DontListen {
		addrs = append(addrs, "client "+net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	}
	if c.ClusterListen != "" {
		addrs = append(addrs, "cluster "+c.ClusterListen)
	}
	if len(addrs) == 0 {
		return "in-process only"
	}
	return strings.Join(addrs, ", ")
}
