package deploy_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	yamlv2 "go.yaml.in/yaml/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const kubernetesDir = "../../deploy/kubernetes"

// manifests are the objects of deploy/kubernetes, each decoded strictly
// into its API type: an unknown or mistyped field fails the decode.
type manifests struct {
	sts     *appsv1.StatefulSet
	svc     *corev1.Service
	pdb     *policyv1.PodDisruptionBudget
	monitor *monitoringv1.ServiceMonitor
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", kubernetesDir, err)
	}
	var m manifests
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(raw, []byte("\n---\n")) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 StatefulSet":
				m.sts = &appsv1.StatefulSet{}
				obj = m.sts
			case "v1 Service":
				m.svc = &corev1.Service{}
				obj = m.svc
			case "policy/v1 PodDisruptionBudget":
				m.pdb = &policyv1.PodDisruptionBudget{}
				obj = m.pdb
			case "monitoring.coreos.com/v1 ServiceMonitor":
				m.monitor = &monitoringv1.ServiceMonitor{}
				obj = m.monitor
			default:
				t.Fatalf("%s #%d: %q %q is not a kind this test knows", f, i, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s #%d (%s): %v", f, i, tm.Kind, err)
			}
		}
	}
	if m.sts == nil || m.svc == nil || m.pdb == nil || m.monitor == nil {
		t.Fatalf("want a StatefulSet, a Service, a PodDisruptionBudget and a ServiceMonitor: %+v", m)
	}
	return m
}

// The strict decode refuses an unknown field: what the manifests pass is
// checked, not ignored.
func TestKubernetesDecodeIsStrict(t *testing.T) {
	var sts appsv1.StatefulSet
	err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  replica: 3\n"), &sts)
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("unknown field: %v, want an error naming it", err)
	}
	err = yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  replicas: three\n"), &sts)
	if err == nil {
		t.Error("mistyped field: no error")
	}
}

func selects(t *testing.T, sel *metav1.LabelSelector, lbls map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(k8slabels.Set(lbls))
}

// The objects fit together: the StatefulSet's selector, the headless
// Service, the PDB and the ServiceMonitor all find the pods; the routes
// name every replica by its stable DNS name; the probes ask real paths on
// the web port.
func TestKubernetesManifestsFit(t *testing.T) {
	m := loadManifests(t)
	sts, svc := m.sts, m.svc
	pod := sts.Spec.Template.Labels
	if !selects(t, sts.Spec.Selector, pod) {
		t.Errorf("the StatefulSet's selector %v does not match its pod labels %v", sts.Spec.Selector, pod)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("service %s is not headless", svc.Name)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("the headless Service must publish not-ready pods: routes need the names before any node is ready")
	}
	if sts.Spec.ServiceName != svc.Name {
		t.Errorf("serviceName %q, want the headless Service %q", sts.Spec.ServiceName, svc.Name)
	}
	if !k8slabels.SelectorFromSet(svc.Spec.Selector).Matches(k8slabels.Set(pod)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("the Service's selector %v does not match the pods %v", svc.Spec.Selector, pod)
	}
	if !selects(t, m.pdb.Spec.Selector, pod) {
		t.Errorf("the PDB's selector %v does not match the pods %v", m.pdb.Spec.Selector, pod)
	}
	if m.pdb.Spec.MaxUnavailable == nil || m.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1 (an R3 stream keeps its quorum)", m.pdb.Spec.MaxUnavailable)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Error("podManagementPolicy must be Parallel: a node is ready only once JetStream has a quorum")
	}
	if !selects(t, &m.monitor.Spec.Selector, svc.Labels) {
		t.Errorf("the ServiceMonitor's selector does not match the Service's labels %v", svc.Labels)
	}

	if len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(sts.Spec.Template.Spec.Containers))
	}
	c := sts.Spec.Template.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range svc.Spec.Ports {
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("service port %s targets %s, which the container does not name", p.Name, p.TargetPort.String())
		}
	}
	for _, ep := range m.monitor.Spec.Endpoints {
		if ep.Port != "web" || (ep.Path != "" && ep.Path != "/metrics") {
			t.Errorf("ServiceMonitor endpoint %+v, want port web, path /metrics", ep)
		}
	}

	flags := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[k] = v
	}
	var want []string
	for i := range *sts.Spec.Replicas {
		want = append(want, fmt.Sprintf("nats://%s-%d.%s:%s", sts.Name, i, svc.Name, strings.Split(flags["nats.cluster.listen"], ":")[1]))
	}
	if routes := strings.Split(flags["nats.cluster.routes"], ","); !slices.Equal(routes, want) {
		t.Errorf("routes %v, want every replica by its stable name: %v", routes, want)
	}
	if flags["node.name"] != "$(POD_NAME)" {
		t.Errorf("--node.name=%q, want the pod's name", flags["node.name"])
	}

	// The data dir is the claim template's volume.
	claims := map[string]bool{}
	for _, vc := range sts.Spec.VolumeClaimTemplates {
		claims[vc.Name] = true
	}
	onData := false
	for _, vm := range c.VolumeMounts {
		if claims[vm.Name] && vm.MountPath == flags["data.dir"] {
			onData = true
		}
	}
	if !onData {
		t.Errorf("--data.dir=%s is not a volumeClaimTemplate's mount", flags["data.dir"])
	}

	// The probes ask the paths a live node answers, on its web port.
	if c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Fatal("readiness and liveness probes are required")
	}
	rn := harness.StartNode(t, node.Config{})
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if p == nil {
			continue
		}
		if p.HTTPGet == nil || ports[p.HTTPGet.Port.String()] != 9480 {
			t.Errorf("%s probe %+v: want httpGet on the web port", name, p.HTTPGet)
			continue
		}
		resp, err := http.Get(rn.URL + p.HTTPGet.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s probe: GET %s on a ready node: %s", name, p.HTTPGet.Path, resp.Status)
		}
	}
	if c.ReadinessProbe.HTTPGet.Path != "/-/ready" || c.LivenessProbe.HTTPGet.Path != "/-/healthy" {
		t.Errorf("readiness %s, liveness %s; want /-/ready and /-/healthy", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
}

// The kubernetes_sd scrape job keeps each jetmetrics pod's web port, names
// the instance after the pod, and drops everything else. Debian's promtool
// lacks Kubernetes discovery, so the job is decoded strictly and its
// relabelling run with Prometheus' own relabel package.
func TestKubernetesScrapeConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(kubernetesDir, "prometheus-scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName             string `yaml:"job_name"`
			KubernetesSDConfigs []struct {
				Role string `yaml:"role"`
			} `yaml:"kubernetes_sd_configs"`
			RelabelConfigs []*relabel.Config `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yamlv2.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%d scrape configs, want 1", len(cfg.ScrapeConfigs))
	}
	sc := cfg.ScrapeConfigs[0]
	if sc.JobName != "jetmetrics" {
		t.Errorf("job %q, want jetmetrics (the alert rules expect it)", sc.JobName)
	}
	if len(sc.KubernetesSDConfigs) != 1 || sc.KubernetesSDConfigs[0].Role != "pod" {
		t.Errorf("kubernetes_sd_configs %+v, want role pod", sc.KubernetesSDConfigs)
	}
	for _, rc := range sc.RelabelConfigs {
		if err := rc.Validate(model.UTF8Validation); err != nil {
			t.Fatal(err)
		}
	}
	m := loadManifests(t)
	target := func(app, port string) labels.Labels {
		lb := labels.NewBuilder(labels.FromStrings(
			"__address__", "10.0.0.7:"+port,
			"__meta_kubernetes_namespace", "metrics",
			"__meta_kubernetes_pod_name", m.sts.Name+"-1",
			"__meta_kubernetes_pod_label_app_kubernetes_io_name", app,
			"__meta_kubernetes_pod_container_port_name", map[string]string{"9480": "web", "4222": "nats", "6222": "cluster"}[port],
		))
		if !relabel.ProcessBuilder(lb, sc.RelabelConfigs...) {
			return labels.EmptyLabels()
		}
		return lb.Labels()
	}
	app := m.sts.Spec.Template.Labels["app.kubernetes.io/name"]
	got := target(app, "9480")
	if got.Get("instance") != m.sts.Name+"-1" || got.Get("__address__") != "10.0.0.7:9480" {
		t.Errorf("the web port of pod %s-1 relabelled to %v", m.sts.Name, got)
	}
	for _, drop := range []labels.Labels{target(app, "4222"), target(app, "6222"), target("other", "9480")} {
		if !drop.IsEmpty() {
			t.Errorf("kept %v", drop)
		}
	}
}
