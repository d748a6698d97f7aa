package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

var probeKinds = []string{ProbeHTTP, ProbeTCP, ProbeNATS}

// maxServiceTokenBytes is the longest subject token a service name may
// map to (streams.MaxTokenBytes; the mapping is streams.TargetToken's).
const maxServiceTokenBytes = 64

// serviceTokenBytes is the length of the subject token streams.TargetToken
// makes of name: a byte of A-Z, a-z, 0-9 or '-' stands for itself, any
// other byte takes three.
func serviceTokenBytes(name string) int {
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			n++
		} else {
			n += 3
		}
	}
	return n
}

// httpMethod is an HTTP method as servers expect it: an uppercase token.
var httpMethod = regexp.MustCompile(`^[A-Z]{1,32}$`)

func (f File) checkProbes() error {
	names := map[string]int{}
	for i, p := range f.Probes {
		key := fmt.Sprintf("probes[%d]", i)
		if j, dup := names[p.Name]; dup && p.Name != "" {
			other := fmt.Sprintf("probes[%d]", j)
			if l := f.src.line(other); l > 0 {
				other += fmt.Sprintf(" (line %d)", l)
			}
			return f.errorf(key+".name", "%s is also the name of %s: names must be unique", quote(p.Name), other)
		}
		names[p.Name] = i
		if err := f.checkProbe(key, p); err != nil {
			return err
		}
	}
	return nil
}

func (f File) checkProbe(key string, p Probe) error {
	switch {
	case p.Name == "":
		return f.errorf(key+".name", "required: the service's name in the API and the metrics")
	case len(p.Name) > MaxVolumeNameBytes:
		return f.errorf(key+".name", "%d bytes long: want at most %d", len(p.Name), MaxVolumeNameBytes)
	case !utf8.ValidString(p.Name):
		return f.errorf(key+".name", "%s is not UTF-8 text", quote(p.Name))
	case serviceTokenBytes(p.Name) > maxServiceTokenBytes:
		return f.errorf(key+".name", "%s maps to a %d-byte subject token, more than %d (each byte other than A-Z, a-z, 0-9 and - takes three): shorten it", quote(p.Name), serviceTokenBytes(p.Name), maxServiceTokenBytes)
	case p.Kind == "":
		return f.errorf(key+".kind", "required: one of %s", strings.Join(probeKinds, ", "))
	}
	valid := false
	for _, k := range probeKinds {
		valid = valid || p.Kind == k
	}
	if !valid {
		return f.errorf(key+".kind", "%s is not a probe kind (%s)", quote(p.Kind), suggest(p.Kind, probeKinds))
	}
	if err := f.checkProbeUnused(key, p); err != nil {
		return err
	}
	if p.Target == "" {
		what := map[string]string{
			ProbeHTTP: "the http:// or https:// URL to request",
			ProbeTCP:  "the host:port to connect to",
			ProbeNATS: "the subject to send a request to (a NATS micro service answers $SRV.PING.<name>)",
		}[p.Kind]
		return f.errorf(key+".target", "required for a %s probe: %s", p.Kind, what)
	}
	if p.Timeout > 0 {
		o := f.Observers.Probe.WithDefaults()
		if p.Timeout > o.ObserveTimeout {
			return f.errorf(key+".timeout", "%s is longer than observers.probe.observe-timeout (%s), which bounds every probe: shorten it, or raise that", p.Timeout, o.ObserveTimeout)
		}
	}
	switch p.Kind {
	case ProbeHTTP:
		return f.checkHTTPProbe(key, p)
	case ProbeTCP:
		host, port, err := net.SplitHostPort(p.Target)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return f.errorf(key+".target", "%s is not host:port (e.g. db.example.com:5432, [::1]:6379)", quote(p.Target))
		}
	case ProbeNATS:
		return f.checkNATSProbe(key, p)
	}
	return nil
}

// checkProbeUnused refuses a key the probe's kind does not read.
func (f File) checkProbeUnused(key string, p Probe) error {
	for _, u := range []struct {
		key  string
		set  bool
		used []string
	}{
		{"method", p.Method != "", []string{ProbeHTTP}},
		{"expect-status", len(p.ExpectStatus) > 0, []string{ProbeHTTP}},
		{"body-match", p.BodyMatch != "", []string{ProbeHTTP}},
		{"follow-redirects", p.FollowRedirects, []string{ProbeHTTP}},
		{"nats-url", p.NATSURL != "", []string{ProbeNATS}},
		{"tls", p.TLS != TLS{}, []string{ProbeHTTP, ProbeNATS}},
	} {
		if !u.set {
			continue
		}
		used := false
		for _, k := range u.used {
			used = used || k == p.Kind
		}
		if !used {
			return f.errorf(key+"."+u.key, "not used by a %s probe (only by %s): remove it, or fix the kind", p.Kind, strings.Join(u.used, ", "))
		}
	}
	return nil
}

// checkHTTPProbe checks an http probe. The URL is never shown: it may
// carry a token in its query.
func (f File) checkHTTPProbe(key string, p Probe) error {
	u, err := url.Parse(p.Target)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return f.errorf(key+".target", "want an http:// or https:// URL with a host")
	case u.User != nil:
		return f.errorf(key+".target", "credentials in the URL are refused: probe an endpoint that needs none")
	case u.Scheme == "http" && p.TLS != TLS{}:
		return f.errorf(key+".tls", "set, but the target is http://: use https:// or remove tls")
	case p.Method != "" && !httpMethod.MatchString(p.Method):
		return f.errorf(key+".method", "%s is not an HTTP method: want one in capitals, e.g. GET, HEAD, POST", quote(p.Method))
	}
	for i, c := range p.ExpectStatus {
		if c < 100 || c > 599 {
			return f.errorf(fmt.Sprintf("%s.expect-status[%d]", key, i), "%d is not an HTTP status code (100 to 599)", c)
		}
	}
	if p.BodyMatch != "" {
		if _, err := regexp.Compile(p.BodyMatch); err != nil {
			return f.errorf(key+".body-match", "not a regular expression (RE2 syntax: escape . ( [ * + ? with \\): %v", err)
		}
	}
	return f.checkTLS(key+".tls", p.TLS)
}

// checkNATSProbe checks a nats probe. The nats-url is never shown.
func (f File) checkNATSProbe(key string, p Probe) error {
	s := p.Target
	if strings.ContainsAny(s, " \t\r\n*>") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return f.errorf(key+".target", "%s is not a subject to send a request to: dot-separated tokens, no spaces or wildcards", quote(s))
	}
	if p.NATSURL == "" {
		if p.TLS != (TLS{}) {
			return f.errorf(key+".tls", "set, but there is no nats-url: the node's own connection has its own TLS; give nats-url or remove tls")
		}
		return nil
	}
	for _, one := range strings.Split(p.NATSURL, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss"):
			return f.errorf(key+".nats-url", "want nats://, tls://, ws:// or wss:// URLs with a host, comma-separated")
		case u.User != nil:
			return f.errorf(key+".nats-url", "credentials in the URL are refused: probe through a server that needs none, or through the node's own connection (leave nats-url out)")
		}
	}
	return f.checkTLS(key+".tls", p.TLS)
}
