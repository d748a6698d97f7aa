package node

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
	"github.com/jetmetrics/jetmetrics/streams"
)

// checkNATSAuth checks the NATS security flags: that each belongs to the
// mode in use (embedded server or --nats.url), that its files read, and
// that no listener leaves loopback without authentication unless
// --nats.insecure says so.
func (c Config) checkNATSAuth() error {
	if c.NATSURL != "" {
		for _, f := range []struct{ flag, v string }{
			{"nats.users.file", c.NATSUsersFile},
			{"nats.cluster.user", c.NATSClusterUser},
			{"nats.cluster.password-file", c.NATSClusterPasswordFile},
			{"nats.cluster.tls.cert-file", c.NATSClusterTLSCertFile},
			{"nats.cluster.tls.key-file", c.NATSClusterTLSKeyFile},
			{"nats.cluster.tls.ca-file", c.NATSClusterTLSCAFile},
		} {
			if f.v != "" {
				return invalid(f.flag, f.v, "is for the embedded server; with --nats.url that server's own configuration decides")
			}
		}
		if _, err := c.clientOptions().NATSOptions(); err != nil {
			return fmt.Errorf("NATS client credentials (--nats.creds, --nats.nkey, --nats.user, --nats.password-file, --nats.token-file, --nats.tls.*): %w", err)
		}
		return nil
	}
	for _, f := range []struct{ flag, v string }{
		{"nats.creds", c.NATSCredsFile},
		{"nats.nkey", c.NATSNkeyFile},
		{"nats.user", c.NATSUser},
		{"nats.password-file", c.NATSPasswordFile},
		{"nats.token-file", c.NATSTokenFile},
	} {
		if f.v != "" {
			return invalid(f.flag, f.v, "authenticates the node to --nats.url; the embedded server's users are in --nats.users.file")
		}
	}
	if c.NATSUsersFile != "" {
		if _, err := natsauth.LoadUsers(c.NATSUsersFile); err != nil {
			return fmt.Errorf("invalid --nats.users.file: %w", err)
		}
	}
	if _, err := c.clientTLS(); err != nil {
		return err
	}
	if _, err := c.routeTLS(); err != nil {
		return err
	}
	if c.NATSClusterUser != "" {
		if _, err := c.clusterPassword(); err != nil {
			return err
		}
	} else if c.NATSClusterPasswordFile != "" {
		return invalid("nats.cluster.password-file", c.NATSClusterPasswordFile, "needs --nats.cluster.user")
	}
	if c.NATSInsecure {
		return nil
	}
	if c.NATSListen != "" && c.NATSUsersFile == "" && !loopbackAddr(c.NATSListen) {
		return invalid("nats.listen", c.NATSListen, "leaves loopback without authentication: set --nats.users.file (or --nats.insecure to allow anyone who reaches it)")
	}
	if c.NATSClusterListen != "" && !loopbackAddr(c.NATSClusterListen) {
		switch {
		case c.NATSClusterUser == "":
			return invalid("nats.cluster.listen", c.NATSClusterListen, "leaves loopback without route authentication: set --nats.cluster.user and --nats.cluster.password-file, and route TLS with --nats.cluster.tls.cert-file, --nats.cluster.tls.key-file and --nats.cluster.tls.ca-file (or --nats.insecure to let any server join)")
		case c.NATSClusterTLSCertFile == "":
			return invalid("nats.cluster.listen", c.NATSClusterListen, "leaves loopback without route TLS: set --nats.cluster.tls.cert-file, --nats.cluster.tls.key-file and --nats.cluster.tls.ca-file (or --nats.insecure to send routes, and the route password, in clear text)")
		}
	}
	return nil
}

// insecureListeners reports the listeners that leave loopback without
// authentication (or, for routes, without TLS), allowed by NATSInsecure:
// the node warns about each.
func (c Config) insecureListeners() []string {
	if c.NATSURL != "" {
		return nil
	}
	var out []string
	if c.NATSListen != "" && c.NATSUsersFile == "" && !loopbackAddr(c.NATSListen) {
		out = append(out, "--nats.listen="+c.NATSListen)
	}
	if c.NATSClusterListen != "" && (c.NATSClusterUser == "" || c.NATSClusterTLSCertFile == "") && !loopbackAddr(c.NATSClusterListen) {
		out = append(out, "--nats.cluster.listen="+c.NATSClusterListen)
	}
	return out
}

// loopbackAddr reports whether a listen address binds loopback only: an
// empty host (every interface), a wildcard or a LAN address does not.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clusterPassword is the route password: NATSClusterPassword (from the
// environment) or the content of NATSClusterPasswordFile, never both.
func (c Config) clusterPassword() (string, error) {
	switch {
	case c.NATSClusterPassword != "" && c.NATSClusterPasswordFile != "":
		return "", invalid("nats.cluster.password-file", c.NATSClusterPasswordFile, "the password is also in JETMETRICS_NATS_CLUSTER_PASSWORD: give it once")
	case c.NATSClusterPassword != "":
		return c.NATSClusterPassword, nil
	case c.NATSClusterPasswordFile == "":
		return "", invalid("nats.cluster.user", c.NATSClusterUser, "needs --nats.cluster.password-file (or JETMETRICS_NATS_CLUSTER_PASSWORD)")
	}
	pw, err := natsauth.ReadSecret(c.NATSClusterPasswordFile)
	if err != nil {
		return "", invalid("nats.cluster.password-file", c.NATSClusterPasswordFile, err.Error())
	}
	return pw, nil
}

// clientTLS is the embedded client listener's TLS, nil without one.
func (c Config) clientTLS() (*tls.Config, error) {
	if c.NATSTLSCertFile == "" && c.NATSTLSKeyFile == "" {
		if c.NATSTLSCAFile != "" {
			return nil, invalid("nats.tls.ca-file", c.NATSTLSCAFile, "verifies client certificates of the embedded server's TLS: needs --nats.tls.cert-file and --nats.tls.key-file")
		}
		return nil, nil
	}
	if c.NATSListen == "" {
		return nil, invalid("nats.tls.cert-file", c.NATSTLSCertFile, "is for the embedded client listener, and --nats.listen is empty")
	}
	t, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.NATSTLSCertFile, KeyFile: c.NATSTLSKeyFile, CaFile: c.NATSTLSCAFile, Verify: c.NATSTLSCAFile != ""})
	if err != nil {
		return nil, fmt.Errorf("invalid NATS TLS (--nats.tls.cert-file, --nats.tls.key-file, --nats.tls.ca-file): %w", err)
	}
	return t, nil
}

// routeTLS is the routes' mutual TLS, nil without one.
func (c Config) routeTLS() (*tls.Config, error) {
	if c.NATSClusterTLSCertFile == "" && c.NATSClusterTLSKeyFile == "" && c.NATSClusterTLSCAFile == "" {
		return nil, nil
	}
	if c.NATSClusterTLSCertFile == "" || c.NATSClusterTLSKeyFile == "" || c.NATSClusterTLSCAFile == "" {
		return nil, invalid("nats.cluster.tls.cert-file", c.NATSClusterTLSCertFile, "route TLS is mutual: set --nats.cluster.tls.cert-file, --nats.cluster.tls.key-file and --nats.cluster.tls.ca-file together")
	}
	if c.NATSClusterListen == "" {
		return nil, invalid("nats.cluster.tls.cert-file", c.NATSClusterTLSCertFile, "needs --nats.cluster.listen")
	}
	t, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.NATSClusterTLSCertFile, KeyFile: c.NATSClusterTLSKeyFile, CaFile: c.NATSClusterTLSCAFile, Verify: true})
	if err != nil {
		return nil, fmt.Errorf("invalid route TLS (--nats.cluster.tls.*): %w", err)
	}
	return t, nil
}

// clientOptions are the node's credentials for --nats.url.
func (c Config) clientOptions() natsauth.ClientOptions {
	return natsauth.ClientOptions{
		CredsFile: c.NATSCredsFile, NkeyFile: c.NATSNkeyFile,
		User: c.NATSUser, Password: c.NATSPassword, PasswordFile: c.NATSPasswordFile,
		TokenFile: c.NATSTokenFile,
		TLSCAFile: c.NATSTLSCAFile, TLSCertFile: c.NATSTLSCertFile, TLSKeyFile: c.NATSTLSKeyFile,
	}
}

// embeddedAuth is the embedded server's authentication: the users of the
// users file with their roles' permissions, and two users of the node's
// own that only in-process connections can use, with random passwords
// made at start: one with the node role for the node's work, one admin
// for creating and recreating the streams.
type embeddedAuth struct {
	users []*server.User
	nkeys []*server.NkeyUser
	// node and admin are the in-process users' connect options.
	node, admin nats.Option
}

// inProcessUser is the prefix of the node's own users' names, which the
// users file cannot take.
const inProcessUser = "jetmetrics-inprocess-"

// embeddedAuth returns nil when the server has no users file: then
// clients need no credentials.
func (c Config) embeddedAuth() (*embeddedAuth, error) {
	if c.NATSUsersFile == "" {
		return nil, nil
	}
	file, err := natsauth.LoadUsers(c.NATSUsersFile)
	if err != nil {
		return nil, fmt.Errorf("--nats.users.file: %w", err)
	}
	obs := streams.ObsConfig{Prefix: c.Streams.Prefix}
	a := &embeddedAuth{}
	for _, u := range file.Users {
		if strings.HasPrefix(u.Name, inProcessUser) {
			return nil, fmt.Errorf("--nats.users.file %s: line %d: user names starting %q are the node's own", c.NATSUsersFile, u.Line(), inProcessUser)
		}
		perms := c.permissions(u, obs)
		if u.Nkey != "" {
			a.nkeys = append(a.nkeys, &server.NkeyUser{Nkey: u.Nkey, Permissions: perms})
			continue
		}
		a.users = append(a.users, &server.User{Username: u.Name, Password: u.Password, Permissions: perms})
	}
	inproc := map[string]struct{}{jwt.ConnectionTypeInProcess: {}}
	for _, role := range []natsauth.Role{natsauth.RoleNode, natsauth.RoleAdmin} {
		pw, err := randomPassword()
		if err != nil {
			return nil, err
		}
		name := inProcessUser + string(role)
		a.users = append(a.users, &server.User{
			Username: name, Password: pw, AllowedConnectionTypes: inproc,
			Permissions: c.permissions(natsauth.User{Name: name, Role: role, Node: c.Name}, obs),
		})
		if role == natsauth.RoleNode {
			a.node = nats.UserInfo(name, pw)
		} else {
			a.admin = nats.UserInfo(name, pw)
		}
	}
	return a, nil
}

// permissions are u's role as NATS permissions; nil for an admin.
func (c Config) permissions(u natsauth.User, obs streams.ObsConfig) *server.Permissions {
	var p streams.Permissions
	switch u.Role {
	case natsauth.RoleProducer:
		p = c.Streams.ProducerPermissions(u.Name, u.Owners, u.ProducerNodes())
	case natsauth.RoleNode:
		p = c.Streams.NodePermissions(u.Node, obs)
	default:
		return nil
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.Publish},
		Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
	}
}

func randomPassword() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
