package node_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// statusTargets are loopback servers for a status page test: a storage
// backend answering like an http-json endpoint, a healthy service and a
// failing one.
type statusTargets struct {
	backend, up, down *httptest.Server
}

func newStatusTargets(t *testing.T) statusTargets {
	t.Helper()
	s := statusTargets{
		backend: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, `{"r": 120, "w": 30}`)
		})),
		up: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "ok")
		})),
		down: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		})),
	}
	for _, srv := range []*httptest.Server{s.backend, s.up, s.down} {
		t.Cleanup(srv.Close)
	}
	return s
}

func (s statusTargets) volume(name string) config.Volume {
	return config.Volume{Name: name, Backend: config.BackendHTTPJSON, Endpoint: s.backend.URL,
		Fields: map[string]string{"iops-read": "r", "iops-write": "w"}}
}

func (s statusTargets) probe(name string, up bool) config.Probe {
	target := s.down.URL
	if up {
		target = s.up.URL
	}
	return config.Probe{Name: name, Kind: config.ProbeHTTP, Target: target}
}

// fastObservers poll every second.
var fastObservers = config.Observers{
	Volume: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond},
	Probe:  config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond},
}

// fetchPage GETs url and returns its status, headers and body.
func fetchPage(url, user, pass string) (int, http.Header, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// pageRows are, from a status page's HTML, the text of the first cell of
// each table row of the given class and the text of its state badge.
func pageRows(doc *html.Node, class string) map[string]string {
	out := map[string]string{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "tr" || !hasClass(n, class) {
			continue
		}
		var name, state string
		for c := range n.Descendants() {
			if c.Type == html.ElementNode && c.Data == "td" && name == "" {
				name = text(c)
			}
			if c.Type == html.ElementNode && c.Data == "span" && hasClass(c, "badge") && state == "" {
				state = text(c)
			}
		}
		out[name] = state
	}
	return out
}

func hasClass(n *html.Node, class string) bool {
	for _, a := range n.Attr {
		if a.Key == "class" && strings.Contains(" "+a.Val+" ", " "+class+" ") {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// One node with three volumes and three services, the page listing two
// of each: names that are markup are shown as text, never as elements;
// the rows beyond the cap are counted; the services' up and down, the
// volumes' figures and sparklines show without JavaScript; the page
// loads nothing from elsewhere and its assets are served.
func TestStatusPage(t *testing.T) {
	t.Cleanup(node.SetStatusMaxRows(2))
	tg := newStatusTargets(t)
	const evilVolume = `<script>alert("volume")</script>`
	const evilService = `<img src=x onerror=alert(1)>`
	rn := harness.StartNode(t, node.Config{File: config.File{
		Observers: fastObservers,
		Volumes:   []config.Volume{tg.volume(evilVolume), tg.volume("fast"), tg.volume("zz-beyond-the-cap")},
		Probes:    []config.Probe{tg.probe(evilService, true), tg.probe("down-svc", false), tg.probe("zz-beyond-too", true)},
	}})

	var page string
	var hdr http.Header
	var doc *html.Node
	harness.Eventually(t, 20*time.Second, func() error {
		code, h, body, err := fetchPage(rn.URL+"/", "", "")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /: %d: %s", code, body)
		}
		d, err := html.Parse(strings.NewReader(body))
		if err != nil {
			return err
		}
		services, volumes := pageRows(d, "service-row"), pageRows(d, "volume-row")
		if services[evilService] != "up" || services["down-svc"] != "down" {
			return fmt.Errorf("services %q, want %q up and down-svc down", services, evilService)
		}
		if volumes[evilVolume] != "ok" || volumes["fast"] != "ok" || !strings.Contains(body, `<polyline points="`) {
			return fmt.Errorf("volumes %q, want both ok with a sparkline", volumes)
		}
		page, hdr, doc = body, h, d
		return nil
	})
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img") {
		t.Errorf("a name reached the page as markup:\n%s", page)
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		if n.Data == "img" || (n.Data == "script" && !strings.HasPrefix(attr(n, "src"), "/ui/status.js?v=")) {
			t.Errorf("unexpected <%s %v> on the page", n.Data, n.Attr)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s> has an event handler attribute %s=%q", n.Data, a.Key, a.Val)
			}
			if (a.Key == "src" || a.Key == "href") && strings.Contains(a.Val, "//") {
				t.Errorf("<%s> refers elsewhere: %s=%q", n.Data, a.Key, a.Val)
			}
		}
	}
	if rows := len(pageRows(doc, "volume-row")); rows != 2 {
		t.Errorf("%d volume rows, want the cap of 2", rows)
	}
	if rows := len(pageRows(doc, "service-row")); rows != 2 {
		t.Errorf("%d service rows, want the cap of 2", rows)
	}
	if strings.Count(page, "and 1 more") != 2 || strings.Contains(page, "zz-beyond") {
		t.Errorf("the rows beyond the cap are not counted as 'and 1 more' (or are shown)")
	}
	body := text(doc)
	for _, want := range []string{rn.Config.Name, "ready", "IOPS", "120 / 30", "/metrics", "/api/v1/nodes", "dead letters"} {
		if !strings.Contains(body, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, a := range []struct {
		path, ctype string
		code        int
	}{
		{"/ui/status.js", "javascript", 200},
		{"/ui/status.css", "text/css", 200},
		{"/ui/status.html.tmpl", "", 404},
		{"/?refresh=0", "", 400},
		{"/?refresh=2", "text/html", 200},
	} {
		code, h, _, err := fetchPage(rn.URL+a.path, "", "")
		if err != nil || code != a.code || !strings.Contains(h.Get("Content-Type"), a.ctype) {
			t.Errorf("GET %s: %d %q %v, want %d %q", a.path, code, h.Get("Content-Type"), err, a.code, a.ctype)
		}
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// With basic auth on, the page and its assets need it like every other
// route; /-/healthy stays open when configured so.
func TestStatusPageNeedsAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webCfg, fmt.Appendf(nil, "basic_auth_users:\n  admin: %s\n", hash), 0o600); err != nil {
		t.Fatal(err)
	}
	n := harness.LaunchNode(t, node.Config{Name: "authed", WebConfigFile: webCfg, WebHealthyWithoutAuth: true}).Node
	base := "http://" + n.WebAddr()
	// The listener is bound before the node serves on it.
	harness.Eventually(t, 60*time.Second, func() error {
		code, _, _, err := fetchPage(base+"/-/healthy", "", "")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/-/healthy: %d", code)
		}
		return err
	})
	for _, r := range []struct {
		path, user, pass string
		want             int
	}{
		{"/", "", "", 401},
		{"/", "admin", "wrong", 401},
		{"/ui/status.js", "", "", 401},
		{"/ui/status.css", "", "", 401},
		{"/-/healthy", "", "", 200},
		{"/", "admin", "s3cret", 200},
		{"/ui/status.js", "admin", "s3cret", 200},
	} {
		code, _, body, err := fetchPage(base+r.path, r.user, r.pass)
		if err != nil || code != r.want {
			t.Errorf("GET %s (user %q, password %q) = %d %v, want %d", r.path, r.user, r.pass, code, err, r.want)
		}
		if code == 200 && r.path == "/" && !strings.Contains(body, "authed") {
			t.Errorf("the page does not name the node:\n%s", body)
		}
	}
}
