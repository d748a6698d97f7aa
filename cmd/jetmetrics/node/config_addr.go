package node

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// listener is one address the node binds at start, for overlap checks.
type listener struct {
	flag string
	host string
	port int
}

// listenAddr parses a listen address "host:port": the host empty, an IP
// or a host name; the port a number from 0 (any free port) to 65535 or a
// service name.
func listenAddr(addr string) (host string, port int, err error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port (%w)", unwrapAddrErr(err))
	}
	if err := checkHost(host); err != nil {
		return "", 0, err
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() && !isLocalIP(ip) {
		return "", 0, fmt.Errorf("%s is not an address of this machine", host)
	}
	port, err = parsePort(ps, true)
	return host, port, err
}

// isLocalIP reports whether ip is one of this machine's interface
// addresses; when they cannot be listed it says yes and leaves it to the
// start.
func isLocalIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// routeAddr parses a route URL, nats://host:port.
func routeAddr(route string) (host string, port int, err error) {
	u, err := parseURL(route)
	if err != nil {
		return "", 0, err
	}
	if u.Scheme != "nats" && u.Scheme != "nats-route" {
		return "", 0, fmt.Errorf("scheme %q: want nats://host:port", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", 0, errors.New("no host: want nats://host:port")
	}
	if err := checkHost(u.Hostname()); err != nil {
		return "", 0, err
	}
	if u.Port() == "" {
		return "", 0, errors.New("no port: want nats://host:port")
	}
	if u.Path != "" && u.Path != "/" {
		return "", 0, fmt.Errorf("path %q: want nats://host:port", u.Path)
	}
	port, err = parsePort(u.Port(), false)
	return u.Hostname(), port, err
}

// checkNATSURL checks one URL of --nats.url as the NATS client reads it:
// a missing scheme means nats://, a missing port 4222.
func checkNATSURL(raw string) error {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return errors.New("an empty URL in the list")
	}
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("scheme %q: want nats://, tls://, ws:// or wss://", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	if err := checkHost(u.Hostname()); err != nil {
		return err
	}
	if u.Port() != "" {
		if _, err := parsePort(u.Port(), false); err != nil {
			return err
		}
	}
	return nil
}

// checkRedisURL checks --redis.url as go-redis reads it, without dialing.
func checkRedisURL(raw string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "redis", "rediss":
		if h := u.Hostname(); h != "" {
			if err := checkHost(h); err != nil {
				return err
			}
		}
		if u.Port() != "" {
			if _, err := parsePort(u.Port(), false); err != nil {
				return err
			}
		}
	case "unix":
		if u.Path == "" {
			return errors.New("no socket path: want unix:///path/to/redis.sock")
		}
	default:
		return fmt.Errorf("scheme %q: want redis://, rediss:// or unix://", u.Scheme)
	}
	if _, err := redis.ParseURL(raw); err != nil {
		msg := err.Error()
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
		return errors.New(msg)
	}
	return nil
}

// parseURL is url.Parse with an error that does not repeat the URL, which
// may hold a password.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return nil, uerr.Err
	}
	return u, err
}

// redactURL hides the passwords of a URL or a comma-separated list of
// them, even of one that does not parse.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		parts[i] = redactOne(p)
	}
	return strings.Join(parts, ",")
}

// redactOne hides the text between the scheme's "user:" and the last '@'
// before the path.
func redactOne(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	rest, scheme := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	user := authority[:at]
	if i := strings.Index(user, ":"); i >= 0 {
		user = user[:i] + ":xxxxx"
	}
	return scheme + user + rest[at:]
}

// parsePort reads a port number, or a service name when names are allowed;
// 0 is allowed when listening (a free port), never when dialing.
func parsePort(p string, listen bool) (int, error) {
	if p == "" {
		if listen {
			return 0, nil
		}
		return 0, errors.New("no port")
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		if !listen || strings.ContainsAny(p, "+-") {
			return 0, fmt.Errorf("port %q is not a number", p)
		}
		n, err = net.LookupPort("tcp", p)
		if err != nil {
			return 0, fmt.Errorf("port %q is neither a number nor a known service", p)
		}
		return n, nil
	}
	if n < 0 || n > 65535 || (n == 0 && !listen) {
		lo := 1
		if listen {
			lo = 0
		}
		return 0, fmt.Errorf("port %d is out of range %d-65535", n, lo)
	}
	return n, nil
}

// checkHost accepts an IP address or a syntactically valid host name; it
// does not resolve it.
func checkHost(h string) error {
	if h == "" || net.ParseIP(h) != nil {
		return nil
	}
	if i := strings.IndexByte(h, '%'); i > 0 && net.ParseIP(h[:i]) != nil {
		return nil // an IPv6 address with a zone
	}
	if len(h) > 253 {
		return fmt.Errorf("host %q is longer than 253 bytes", h)
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is not a host name or IP address", h)
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
				return fmt.Errorf("host %q is not a host name or IP address", h)
			}
		}
	}
	return nil
}

// unwrapAddrErr drops the address from net's error, which the caller
// names already.
func unwrapAddrErr(err error) error {
	var aerr *net.AddrError
	if errors.As(err, &aerr) {
		return errors.New(aerr.Err)
	}
	return err
}

// isSelf reports whether a route to routeHost:routePort reaches the node's
// own route listener on listenHost:listenPort: the same port, and a host
// that is the listen host, a loopback name for a loopback or wildcard
// listener, or this machine's name or one of its addresses for a wildcard
// listener. It does not resolve names.
func isSelf(listenHost string, listenPort int, routeHost string, routePort int) bool {
	if listenPort != routePort || listenPort == 0 {
		return false
	}
	if strings.EqualFold(listenHost, routeHost) {
		return true
	}
	if isLoopback(routeHost) {
		return isLoopback(listenHost) || isWildcard(listenHost)
	}
	if !isWildcard(listenHost) {
		return false
	}
	if h, err := os.Hostname(); err == nil && strings.EqualFold(h, routeHost) {
		return true
	}
	ip := net.ParseIP(routeHost)
	return ip != nil && isLocalIP(ip)
}

func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostsOverlap reports whether listeners on a and b, on one port, would
// collide: the same host, or either one every address.
func hostsOverlap(a, b string) bool {
	if isWildcard(a) || isWildcard(b) || strings.EqualFold(a, b) {
		return true
	}
	return isLoopback(a) && isLoopback(b) && (strings.EqualFold(a, "localhost") || strings.EqualFold(b, "localhost"))
}
