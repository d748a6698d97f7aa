package deploy_test

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const (
	dashboardFile  = "../../deploy/grafana/dashboards/jetmetrics.json"
	datasourceFile = "../../deploy/grafana/provisioning/datasources/prometheus.yaml"
	rulesFile      = "../../deploy/prometheus/alerts.yml"
)

// grafanaVars are the Grafana variables the dashboard's queries use, with
// a value of the kind Grafana puts in their place before sending the query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h")

// promqlMetrics parses expr as PromQL and returns the metric names its
// selectors name.
func promqlMetrics(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		t.Errorf("%s: %v", expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%s: a selector without a metric name", expr)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// dashboardExprs returns every "expr" of the dashboard, wherever it is
// (panels, rows' panels, targets), with the title of its panel.
func dashboardExprs(t *testing.T) (map[string]any, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	exprs := map[string]string{}
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs[s] = title
				}
				walk(x, title)
			}
		case []any:
			for _, x := range v {
				walk(x, title)
			}
		}
	}
	walk(dash, "")
	return dash, exprs
}

// Every query of the dashboard is PromQL and names only series a live node
// exports; every alert rule too (less up, which Prometheus makes itself).
// The dashboard covers each area the issue asks for.
func TestDashboardQueriesAreExported(t *testing.T) {
	dash, exprs := dashboardExprs(t)
	if len(exprs) == 0 {
		t.Fatal("no expr in the dashboard")
	}
	live := liveSeriesNames(t)

	used := map[string]bool{}
	for expr, title := range exprs {
		for _, name := range promqlMetrics(t, expr) {
			used[name] = true
			if !live[name] {
				t.Errorf("panel %q: %s: %s is not exported by a live node", title, expr, name)
			}
		}
	}
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, name := range promqlMetrics(t, r.Expr) {
				if name != "up" && !live[name] {
					t.Errorf("alert %s: %s is not exported by a live node", r.Alert, name)
				}
			}
		}
	}

	// The areas: pipeline health, per-node rates and lag, dead letters,
	// volume performance, service latency.
	for _, want := range []string{
		"jetmetrics_peer_up", "jetmetrics_aggregator_resumes_total", "jetmetrics_snapshot_failures_total",
		"jetmetrics_orphan_deltas", "jetmetrics_observer_leader",
		"jetmetrics_aggregator_messages_total", "jetmetrics_delta_backlog_messages",
		"jetmetrics_rejected_total", "jetmetrics_stream_bytes",
		"jetmetrics_volume_iops_read", "jetmetrics_volume_throughput_bytes_read", "jetmetrics_volume_latency_usec_read",
		"jetmetrics_service_latency_seconds_bucket", "jetmetrics_service_up",
	} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	quantile := false
	for expr := range exprs {
		if strings.Contains(expr, "histogram_quantile(") && strings.Contains(expr, "jetmetrics_service_latency_seconds_bucket") {
			quantile = true
		}
	}
	if !quantile {
		t.Error("no histogram_quantile over jetmetrics_service_latency_seconds_bucket")
	}
	if dash["uid"] != "jetmetrics" {
		t.Errorf("dashboard uid %v, want jetmetrics (links and provisioning use it)", dash["uid"])
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d queries over %d metrics: %s", len(exprs), len(names), strings.Join(names, " "))
}

// Every panel and target asks the datasource the provisioning defines, by
// its uid.
func TestDashboardUsesProvisionedDatasource(t *testing.T) {
	raw, err := os.ReadFile(datasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL string
		}
	}
	if err := yaml.Unmarshal(raw, &prov); err != nil {
		t.Fatal(err)
	}
	if prov.APIVersion != 1 || len(prov.Datasources) != 1 || prov.Datasources[0].Type != "prometheus" {
		t.Fatalf("datasource provisioning: %+v, want apiVersion 1 and one prometheus datasource", prov)
	}
	uid := prov.Datasources[0].UID
	dash, _ := dashboardExprs(t)
	var walk func(v any, path string)
	seen := 0
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			if ds, ok := v["datasource"].(map[string]any); ok {
				seen++
				if ds["uid"] != uid || ds["type"] != "prometheus" {
					t.Errorf("%s: datasource %v, want the provisioned prometheus uid %q", path, ds, uid)
				}
			}
			for k, x := range v {
				walk(x, path+"."+k)
			}
		case []any:
			for i, x := range v {
				walk(x, path+"["+string(rune('0'+i%10))+"]")
			}
		}
	}
	walk(dash, "dashboard")
	if seen == 0 {
		t.Error("no panel names a datasource")
	}
}
