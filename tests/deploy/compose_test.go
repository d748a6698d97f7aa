package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

const composeFile = "../../deploy/compose/compose.yaml"

// loadCompose loads the compose file as `docker compose config` does: the
// file's directory as the project directory, the process environment and
// a .env there if any, interpolation, normalisation and the consistency
// checks (every volume, secret and network a service names is declared).
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)), cli.WithOsEnv, cli.WithDotEnv,
		cli.WithConsistency(true), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker compose config would refuse %s: %v", composeFile, err)
	}
	return p
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

// The compose file has three nodes whose embedded NATS servers route to
// each other by service name, each on its own data volume.
func TestComposeClustersThreeNodes(t *testing.T) {
	p := loadCompose(t)
	var nodes []string
	for name := range p.Services {
		if strings.HasPrefix(name, "node-") {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	if len(nodes) != 3 {
		t.Fatalf("node services %v, want 3", nodes)
	}
	names := map[string]bool{}
	for _, n := range nodes {
		s := p.Services[n]
		name := env(s, "JETMETRICS_NODE_NAME")
		if name != n {
			t.Errorf("%s: JETMETRICS_NODE_NAME %q, want the service name", n, name)
		}
		names[name] = true
		_, port, _ := strings.Cut(env(s, "JETMETRICS_NATS_CLUSTER_LISTEN"), ":")
		if port == "" {
			t.Fatalf("%s: no JETMETRICS_NATS_CLUSTER_LISTEN", n)
		}
		routes := strings.Split(env(s, "JETMETRICS_NATS_CLUSTER_ROUTES"), ",")
		for _, peer := range nodes {
			if !slices.Contains(routes, "nats://"+peer+":"+port) {
				t.Errorf("%s: routes %v lack nats://%s:%s", n, routes, peer, port)
			}
		}
		data := false
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Target == "/data" {
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s: volume %s not declared", n, v.Source)
				}
				data = true
			}
		}
		if !data {
			t.Errorf("%s: no named volume on /data (the Dockerfile's JETMETRICS_DATA_DIR)", n)
		}
	}
	if len(names) != 3 {
		t.Errorf("node names %v are not distinct", names)
	}
}

// bindSource returns the repository file or directory mounted at target
// in service s, failing the test when none is or it does not exist.
func bindSource(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			if _, err := os.Stat(v.Source); err != nil {
				t.Fatalf("%s: %s is mounted from %s, which is not in the repository: %v", s.Name, target, v.Source, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: %s is mounted read-write", s.Name, target)
			}
			return v.Source
		}
	}
	t.Fatalf("%s: nothing mounted at %s", s.Name, target)
	return ""
}

// Prometheus gets deploy/prometheus's scrape config and rules, and its
// targets are exactly the node services on their web port.
func TestComposePrometheusScrapesEachNode(t *testing.T) {
	p := loadCompose(t)
	prom, ok := p.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	cfgFile := bindSource(t, prom, "/etc/prometheus/prometheus.yml")
	raw, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, rf := range cfg.RuleFiles {
		bindSource(t, prom, filepath.Join("/etc/prometheus", rf))
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "jetmetrics" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	var want []string
	for name, s := range p.Services {
		if strings.HasPrefix(name, "node-") {
			port := "9480"
			if v := env(s, "JETMETRICS_WEB_LISTEN_ADDRESS"); v != "" {
				_, port, _ = strings.Cut(v, ":")
			}
			want = append(want, name+":"+port)
		}
	}
	slices.Sort(targets)
	slices.Sort(want)
	if !slices.Equal(targets, want) {
		t.Errorf("job jetmetrics scrapes %v, want each node: %v", targets, want)
	}
}

// Grafana gets the datasource and dashboard provisioning of deploy/grafana,
// and the dashboards directory the provider names holds the dashboard.
func TestComposeGrafanaIsProvisioned(t *testing.T) {
	p := loadCompose(t)
	g, ok := p.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	ds := bindSource(t, g, "/etc/grafana/provisioning/datasources")
	if _, err := os.Stat(filepath.Join(ds, "prometheus.yaml")); err != nil {
		t.Error(err)
	}
	dp := bindSource(t, g, "/etc/grafana/provisioning/dashboards")
	raw, err := os.ReadFile(filepath.Join(dp, "jetmetrics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	if err := yaml.Unmarshal(raw, &prov); err != nil {
		t.Fatal(err)
	}
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("dashboard provisioning %+v, want one file provider", prov)
	}
	dir := bindSource(t, g, prov.Providers[0].Options.Path)
	if _, err := os.Stat(filepath.Join(dir, "jetmetrics.json")); err != nil {
		t.Errorf("the provider's path %s holds no jetmetrics.json: %v", prov.Providers[0].Options.Path, err)
	}
	// The datasource's URL is the compose service.
	raw, err = os.ReadFile(filepath.Join(ds, "prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "url: http://prometheus:9090") {
		t.Error("the datasource does not point at the prometheus service")
	}
}
