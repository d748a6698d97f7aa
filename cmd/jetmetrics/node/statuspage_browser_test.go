package node_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// webDriver is a WebDriver session of chromedriver driving a headless
// Chromium, spoken over plain HTTP and JSON.
type webDriver struct {
	base    string // http://127.0.0.1:port/session/id
	client  *http.Client
	session string
}

// browser finds Chromium and chromedriver: missing, the test fails on CI
// and is skipped elsewhere, saying how to install them.
func browser(t *testing.T) (chromium, driver string) {
	t.Helper()
	var missing []string
	for _, name := range []string{"chromium", "chromedriver"} {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
		}
		if name == "chromium" {
			chromium = p
		} else {
			driver = p
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s not on PATH: run `go tool task chromium` (Debian's chromium and chromium-driver packages)", strings.Join(missing, " and "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return chromium, driver
}

// startBrowser starts chromedriver on a free loopback port and a headless
// Chromium session with a fresh profile; both end at cleanup.
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	chromium, driver := browser(t)
	port := harness.FreePort(t)
	cmd := exec.Command(driver, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so the browser it starts goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", driver, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("chromedriver's output:\n%s", out.String())
		}
	})
	wd := &webDriver{base: "http://127.0.0.1:" + strconv.Itoa(port), client: &http.Client{Timeout: 30 * time.Second}}
	harness.Eventually(t, 20*time.Second, func() error {
		var st struct {
			Ready bool `json:"ready"`
		}
		if err := wd.call(http.MethodGet, "/status", nil, &st); err != nil {
			return err
		}
		if !st.Ready {
			return fmt.Errorf("chromedriver is not ready")
		}
		return nil
	})
	var created struct {
		SessionID string `json:"sessionId"`
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":       "chrome",
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,900", "--user-data-dir=" + t.TempDir()},
		},
	}}}
	if err := wd.call(http.MethodPost, "/session", caps, &created); err != nil {
		t.Fatalf("new browser session: %v", err)
	}
	wd.session = created.SessionID
	t.Cleanup(func() { _ = wd.call(http.MethodDelete, "/session/"+wd.session, nil, nil) })
	return wd
}

// call sends a WebDriver command and decodes its "value" into out.
func (wd *webDriver) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, wd.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := wd.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, b)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, env.Value)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Value, out)
}

func (wd *webDriver) cmd(method, path string, in, out any) error {
	return wd.call(method, "/session/"+wd.session+path, in, out)
}

// eval runs script in the page and decodes what it returns into out.
func (wd *webDriver) eval(script string, out any) error {
	return wd.cmd(http.MethodPost, "/execute/sync", map[string]any{"script": script, "args": []any{}}, out)
}

// logEntry is one line of the browser's console.
type logEntry struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// Three nodes with a volume (named like markup) and two probed services,
// one up and one failing: the status page of one node, loaded in a real
// headless Chromium, logs no console error, shows every node, the volume
// and both services with their state, keeps the hostile name as text,
// and its script refreshes the sections in place; the HTML without
// JavaScript shows the same. A screenshot is written to
// $JETMETRICS_ARTIFACTS (default a temporary directory).
func TestStatusPageInChromium(t *testing.T) {
	wd := startBrowser(t)
	tg := newStatusTargets(t)
	const volume = `<b>array-1</b>`
	file := config.File{
		Observers: fastObservers,
		Volumes:   []config.Volume{tg.volume(volume)},
		Probes:    []config.Probe{tg.probe("checkout-api", true), tg.probe("billing-db", false)},
	}
	ns := harness.NATS(t)
	names := []string{"alpha", "bravo", "charlie"}
	nodes := make([]*harness.RunningNode, len(names))
	for i, name := range names {
		nodes[i] = harness.StartNode(t, node.Config{Name: name, NATSURL: ns.ClientURL(), File: file,
			SnapshotInterval: time.Second})
	}

	// Without JavaScript: a plain GET has everything.
	url := nodes[0].URL + "/?refresh=1"
	harness.Eventually(t, 30*time.Second, func() error {
		code, _, body, err := fetchPage(url, "", "")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET %s: %d %v", url, code, err)
		}
		doc, err := html.Parse(strings.NewReader(body))
		if err != nil {
			return err
		}
		return pageShows(pageRows(doc, "node-row"), pageRows(doc, "volume-row"), pageRows(doc, "service-row"), names, volume)
	})

	// In the browser: the same, read from the rendered DOM, after the
	// script has refreshed the sections at least twice.
	if err := wd.cmd(http.MethodPost, "/url", map[string]string{"url": url}, nil); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		var refreshes string
		if err := wd.eval(`return document.body.getAttribute("data-refreshes") || "0";`, &refreshes); err != nil {
			return err
		}
		if n, _ := strconv.Atoi(refreshes); n < 2 {
			return fmt.Errorf("the script refreshed the page %s times, want 2", refreshes)
		}
		return nil
	})
	var rows map[string]map[string]string
	const readRows = `
		const rows = {};
		for (const cls of ["node-row", "volume-row", "service-row"]) {
			rows[cls] = {};
			for (const tr of document.querySelectorAll("tr." + cls)) {
				const badge = tr.querySelector(".badge");
				rows[cls][tr.querySelector("td").textContent.trim()] = badge ? badge.textContent.trim() : "";
			}
		}
		return rows;`
	if err := wd.eval(readRows, &rows); err != nil {
		t.Fatal(err)
	}
	if err := pageShows(rows["node-row"], rows["volume-row"], rows["service-row"], names, volume); err != nil {
		t.Errorf("in Chromium: %v", err)
	}
	var injected bool
	if err := wd.eval(`return document.querySelector("b") !== null;`, &injected); err != nil || injected {
		t.Errorf("the volume's name became markup in the browser (%v)", err)
	}
	var relTime string
	if err := wd.eval(`return document.querySelector("#services time[data-rel]").textContent;`, &relTime); err != nil || !strings.HasSuffix(relTime, " ago") && relTime != "just now" {
		t.Errorf("relative time %q (%v), want \"… ago\"", relTime, err)
	}

	// A full-page screenshot.
	var height int
	if err := wd.eval(`return document.documentElement.scrollHeight;`, &height); err != nil {
		t.Fatal(err)
	}
	if err := wd.cmd(http.MethodPost, "/window/rect", map[string]int{"width": 1280, "height": min(max(height+140, 600), 4000)}, nil); err != nil {
		t.Fatal(err)
	}
	var shot string
	if err := wd.cmd(http.MethodGet, "/screenshot", nil, &shot); err != nil {
		t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is no PNG: %v", err)
	}
	dir := os.Getenv("JETMETRICS_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "status-page.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s", path)

	// Last, the console: nothing at SEVERE (errors, failed loads, CSP
	// violations).
	var logs []logEntry
	if err := wd.cmd(http.MethodPost, "/se/log", map[string]string{"type": "browser"}, &logs); err != nil {
		t.Fatalf("read the browser's console: %v", err)
	}
	for _, l := range logs {
		if l.Level == "SEVERE" {
			t.Errorf("console error: %s", l.Message)
		}
	}
}

// pageShows checks that every node is listed up, the volume ok, and the
// services up and down as the targets answer.
func pageShows(nodeRows, volumeRows, serviceRows map[string]string, names []string, volume string) error {
	for _, n := range names {
		if nodeRows[n] != "up" {
			return fmt.Errorf("nodes %q: want %s up", nodeRows, n)
		}
	}
	if volumeRows[volume] != "ok" {
		return fmt.Errorf("volumes %q: want %q ok", volumeRows, volume)
	}
	if serviceRows["checkout-api"] != "up" || serviceRows["billing-db"] != "down" {
		return fmt.Errorf("services %q: want checkout-api up and billing-db down", serviceRows)
	}
	return nil
}
