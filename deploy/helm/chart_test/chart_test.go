// Package chart_test renders the abgate Helm chart with Helm's own engine
// for several values sets and decodes every manifest strictly against the
// Kubernetes API types: an unknown or misplaced field fails, as it would
// on a server with field validation. It also checks what the pieces must
// agree on (ports, probes, selectors, the drain budget) and validates the
// rendered abgate.yaml with abgate's own config loader.
//
// It is a module of its own so that Helm's dependency tree stays out of
// abgate's go.mod. Run it with `make chart-test`.
package chart_test

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "../abgate"
	release   = "prod"
	namespace = "llm"
)

// serviceMonitor is the part of prometheus-operator's monitoring.coreos.com/v1
// ServiceMonitor the chart uses; strict decoding rejects anything else.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames,omitempty"`
			Any        bool     `json:"any,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// objects is one rendered release, decoded.
type objects struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	accounts     []*corev1.ServiceAccount
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	monitors     []*serviceMonitor
	notes        string
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// render renders the chart as `helm install prod -n llm -f values` would.
func render(t *testing.T, values string) (map[string]string, error) {
	t.Helper()
	c := loadChart(t)
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	top, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{
		Name: release, Namespace: namespace, IsInstall: true, Revision: 1,
	}, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(c, top)
}

// decode strictly decodes every document of every rendered template.
func decode(t *testing.T, files map[string]string) objects {
	t.Helper()
	var o objects
	for _, name := range slices.Sorted(maps.Keys(files)) {
		text := files[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			o.notes = text
			continue
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(text, -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			where := fmt.Sprintf("%s[%d]", name, i)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v\n%s", where, err, doc)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				x := &appsv1.Deployment{}
				o.deployments, obj = append(o.deployments, x), x
			case "apps/v1 StatefulSet":
				x := &appsv1.StatefulSet{}
				o.statefulSets, obj = append(o.statefulSets, x), x
			case "v1 Service":
				x := &corev1.Service{}
				o.services, obj = append(o.services, x), x
			case "v1 ConfigMap":
				x := &corev1.ConfigMap{}
				o.configMaps, obj = append(o.configMaps, x), x
			case "v1 Secret":
				x := &corev1.Secret{}
				o.secrets, obj = append(o.secrets, x), x
			case "v1 ServiceAccount":
				x := &corev1.ServiceAccount{}
				o.accounts, obj = append(o.accounts, x), x
			case "policy/v1 PodDisruptionBudget":
				x := &policyv1.PodDisruptionBudget{}
				o.pdbs, obj = append(o.pdbs, x), x
			case "autoscaling/v2 HorizontalPodAutoscaler":
				x := &autoscalingv2.HorizontalPodAutoscaler{}
				o.hpas, obj = append(o.hpas, x), x
			case "monitoring.coreos.com/v1 ServiceMonitor":
				x := &serviceMonitor{}
				o.monitors, obj = append(o.monitors, x), x
			default:
				t.Fatalf("%s: unexpected %s %s", where, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: strict decode: %v\n%s", where, err, doc)
			}
		}
	}
	return o
}

func renderOK(t *testing.T, values string) objects {
	t.Helper()
	files, err := render(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	o := decode(t, files)
	check(t, o)
	return o
}

// check verifies what every release must satisfy, whatever the values.
func check(t *testing.T, o objects) {
	t.Helper()
	if len(o.deployments) != 1 || len(o.configMaps) != 1 {
		t.Fatalf("want one Deployment and one ConfigMap, got %d and %d", len(o.deployments), len(o.configMaps))
	}
	d := o.deployments[0]
	pod := d.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("Deployment selector %v does not match its pods %v", d.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["proxy"] == 0 || ports["admin"] == 0 {
		t.Fatalf("container ports %v: want proxy and admin", c.Ports)
	}

	// Probes: liveness /healthz, readiness /readyz, on the admin listener.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"startup", c.StartupProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: %+v", p.name, p.probe)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe: %s on port %s, want %s on admin", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}

	// Non-root, read-only root filesystem, nothing to escalate.
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext: %+v", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext: %+v", sc)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("abgate needs no Kubernetes API token: automountServiceAccountToken should be false")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}
	if pod.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation: a config change would not roll the pods")
	}

	// The config: mounted from the ConfigMap, valid for serve with the
	// environment the pod gets, listening where the ports say.
	cm := o.configMaps[0]
	var mounted bool
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			for _, m := range c.VolumeMounts {
				mounted = mounted || (m.Name == v.Name && m.MountPath == "/etc/abgate")
			}
		}
	}
	if !mounted || !slices.Equal(c.Args, []string{"serve", "--config", "/etc/abgate/abgate.yaml"}) {
		t.Errorf("ConfigMap %s not served: args %q, mounts %+v", cm.Name, c.Args, c.VolumeMounts)
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		if env[e.Name] {
			t.Errorf("env %s set twice", e.Name)
		}
		env[e.Name] = true
	}
	lookup := func(name string) (string, bool) {
		if !env[name] {
			t.Errorf("abgate.yaml references ${%s}, which the container's env does not set", name)
			return "", false
		}
		return strings.Repeat("A", 64), true
	}
	cfg, err := experiments.ParseForServe([]byte(cm.Data["abgate.yaml"]), lookup)
	if err != nil {
		t.Fatalf("rendered abgate.yaml: %v\n%s", err, cm.Data["abgate.yaml"])
	}
	for listen, name := range map[string]string{cfg.Server.Listen: "proxy", cfg.Server.AdminListen: "admin"} {
		host, port, _ := net.SplitHostPort(listen)
		if host != "0.0.0.0" || port != strconv.Itoa(int(ports[name])) {
			t.Errorf("%s listener %q, container port %d", name, listen, ports[name])
		}
	}
	if len(cfg.Redis.Addrs) == 0 {
		t.Error("no redis.addrs: several replicas need the shared store")
	}

	// Termination: above preStop sleep + shutdown_timeout + lease (3s) +
	// drain (10s).
	budget := time.Duration(cfg.Server.ShutdownTimeout) + 13*time.Second
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		budget += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= budget {
		t.Errorf("terminationGracePeriodSeconds %v is not above the drain budget %v", g, budget)
	}

	// Secrets come from Secrets, by reference.
	for _, e := range c.Env {
		if strings.Contains(e.Name, "TOKEN") || strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "KEY") || strings.Contains(e.Name, "PASSWORD") {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("env %s is not a secret reference", e.Name)
			}
		}
	}

	// Services lead to the pods' named ports.
	var gw *corev1.Service
	for _, s := range o.services {
		if s.Name == d.Name {
			gw = s
		}
	}
	if gw == nil {
		t.Fatalf("no Service %s", d.Name)
	}
	if !labels.SelectorFromSet(gw.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Errorf("Service selector %v does not match the pods", gw.Spec.Selector)
	}
	var svcPorts []string
	for _, p := range gw.Spec.Ports {
		svcPorts = append(svcPorts, p.Name)
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %s, which the container does not name", p.Name, p.TargetPort.String())
		}
	}
	if !slices.Equal(svcPorts, []string{"proxy", "admin"}) {
		t.Errorf("Service ports %q", svcPorts)
	}

	for _, p := range o.pdbs {
		s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || !s.Matches(labels.Set(pod.Labels)) {
			t.Errorf("PDB selector %v does not match the pods", p.Spec.Selector)
		}
		if (p.Spec.MaxUnavailable == nil) == (p.Spec.MinAvailable == nil) {
			t.Errorf("PDB needs exactly one of maxUnavailable, minAvailable")
		}
	}
	for _, h := range o.hpas {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name {
			t.Errorf("HPA targets %+v", h.Spec.ScaleTargetRef)
		}
		if d.Spec.Replicas != nil {
			t.Error("with an HPA the Deployment must not set replicas (each upgrade would reset them)")
		}
	}
	for _, m := range o.monitors {
		s, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil || !s.Matches(labels.Set(gw.Labels)) {
			t.Errorf("ServiceMonitor selector %v does not match Service labels %v", m.Spec.Selector, gw.Labels)
		}
		for _, other := range o.services {
			if other != gw && err == nil && s.Matches(labels.Set(other.Labels)) {
				t.Errorf("ServiceMonitor also selects Service %s", other.Name)
			}
		}
		if len(m.Spec.Endpoints) != 1 || m.Spec.Endpoints[0].Port != "admin" || m.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints %+v: want /metrics on admin", m.Spec.Endpoints)
		}
	}
	for _, sa := range o.accounts {
		if pod.Spec.ServiceAccountName != sa.Name {
			t.Errorf("pods run as %q, the chart creates %q", pod.Spec.ServiceAccountName, sa.Name)
		}
	}
	if !strings.Contains(o.notes, "/readyz") {
		t.Errorf("NOTES.txt:\n%s", o.notes)
	}
}

func secretRefs(d *appsv1.Deployment) map[string]string {
	refs := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			refs[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return refs
}

func TestDefaults(t *testing.T) {
	o := renderOK(t, "")
	d := o.deployments[0]
	if d.Name != "prod-abgate" || *d.Spec.Replicas != 2 {
		t.Errorf("Deployment %s, replicas %v", d.Name, d.Spec.Replicas)
	}
	if len(o.statefulSets) != 0 || len(o.hpas) != 0 || len(o.monitors) != 0 || len(o.secrets) != 0 {
		t.Errorf("defaults render optional objects: %d StatefulSets, %d HPAs, %d ServiceMonitors, %d Secrets",
			len(o.statefulSets), len(o.hpas), len(o.monitors), len(o.secrets))
	}
	if len(o.pdbs) != 1 || o.pdbs[0].Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("want a PDB with maxUnavailable 1: %+v", o.pdbs)
	}
	refs := secretRefs(d)
	if refs["ABGATE_TOKEN_SECRET"] != "prod-abgate/token-secret" || refs["ABGATE_ADMIN_TOKEN"] != "prod-abgate/admin-token" {
		t.Errorf("secret references %v", refs)
	}
	if !strings.Contains(o.notes, "kubectl -n llm create secret generic prod-abgate") ||
		!strings.Contains(o.notes, `--from-literal=token-secret="$(openssl rand -base64 48)"`) {
		t.Errorf("NOTES must tell how to create the Secret:\n%s", o.notes)
	}
	if g := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != 53 {
		t.Errorf("terminationGracePeriodSeconds %d, want 5 + 30 + 13 + 5", g)
	}
	if s := d.Spec.Template.Spec.Containers[0].Lifecycle.PreStop.Sleep; s == nil || s.Seconds != 5 {
		t.Errorf("preStop sleep %+v", s)
	}
	cfg := o.configMaps[0].Data["abgate.yaml"]
	if !strings.Contains(cfg, "- redis-master:6379") || strings.Contains(cfg, "password") {
		t.Errorf("config redis section:\n%s", cfg)
	}
}

func TestBundledRedis(t *testing.T) {
	o := renderOK(t, `
redis:
  bundled:
    enabled: true
    persistence: {size: 20Gi, storageClass: fast}
  password: {existingSecret: redis-auth, key: password}
`)
	if len(o.statefulSets) != 1 {
		t.Fatalf("%d StatefulSets", len(o.statefulSets))
	}
	ss := o.statefulSets[0]
	c := ss.Spec.Template.Spec.Containers[0]
	args := strings.Join(append(append([]string{}, c.Command...), c.Args...), " ")
	for _, want := range []string{"redis-server --appendonly yes", "--maxmemory-policy noeviction", "--dir /data", "--requirepass $(REDIS_PASSWORD)"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis command %q lacks %q", args, want)
		}
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("no PVC template")
	}
	pvc := ss.Spec.VolumeClaimTemplates[0]
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "20Gi" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast" {
		t.Errorf("PVC %+v", pvc.Spec)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == pvc.Name && m.MountPath == "/data" }) {
		t.Errorf("the PVC is not mounted at /data: %+v", c.VolumeMounts)
	}
	if psc := ss.Spec.Template.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("redis pod securityContext %+v", psc)
	}
	sel, _ := metav1.LabelSelectorAsSelector(ss.Spec.Selector)
	if !sel.Matches(labels.Set(ss.Spec.Template.Labels)) {
		t.Error("StatefulSet selector does not match its pods")
	}
	gwSel, _ := metav1.LabelSelectorAsSelector(o.deployments[0].Spec.Selector)
	if gwSel.Matches(labels.Set(ss.Spec.Template.Labels)) {
		t.Error("the gateway's selector also matches the redis pods")
	}

	// The config points at the redis Service, which leads to the pod.
	cfg, err := experiments.ParseForServe([]byte(o.configMaps[0].Data["abgate.yaml"]), func(string) (string, bool) { return strings.Repeat("A", 64), true })
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(cfg.Redis.Addrs[0])
	var found bool
	for _, s := range o.services {
		if s.Name == host && s.Spec.ClusterIP != "None" {
			found = labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(ss.Spec.Template.Labels)) &&
				slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port })
		}
		if s.Name == ss.Spec.ServiceName && s.Spec.ClusterIP != "None" {
			t.Errorf("StatefulSet serviceName %s is not headless", s.Name)
		}
	}
	if !found {
		t.Errorf("redis.addrs %q does not name a Service for the redis pod", cfg.Redis.Addrs)
	}
	if cfg.Redis.Password.Reveal() == "" || secretRefs(o.deployments[0])["ABGATE_REDIS_PASSWORD"] != "redis-auth/password" {
		t.Errorf("redis password not wired: %v", secretRefs(o.deployments[0]))
	}
}

func TestAutoscalingAndServiceMonitor(t *testing.T) {
	o := renderOK(t, `
autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 10, targetMemoryUtilizationPercentage: 80}
metrics:
  serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
podDisruptionBudget: {minAvailable: 2}
`)
	if len(o.hpas) != 1 || len(o.monitors) != 1 {
		t.Fatalf("%d HPAs, %d ServiceMonitors", len(o.hpas), len(o.monitors))
	}
	h := o.hpas[0]
	if *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 10 || len(h.Spec.Metrics) != 2 {
		t.Errorf("HPA spec %+v", h.Spec)
	}
	m := o.monitors[0]
	if m.Metadata.Labels["release"] != "kube-prometheus-stack" || m.Spec.NamespaceSelector.MatchNames[0] != namespace {
		t.Errorf("ServiceMonitor %+v", m)
	}
	if p := o.pdbs[0].Spec; p.MinAvailable == nil || p.MinAvailable.IntValue() != 2 || p.MaxUnavailable != nil {
		t.Errorf("PDB %+v", p)
	}
}

func TestExistingSecret(t *testing.T) {
	o := renderOK(t, `
secrets:
  existingSecret: abgate-from-vault
  env:
    - {name: ABGATE_TOKEN_SECRET, key: token-secret}
    - {name: ABGATE_ADMIN_TOKEN, key: admin-token}
    - {name: ABGATE_VIEWER_TOKEN, key: viewer-token}
    - {name: ABGATE_FEEDBACK_TOKEN, key: feedback-token}
    - {name: ABGATE_BASE_API_KEY, key: openai}
    - {name: ABGATE_CANDIDATE_API_KEY, key: vllm, optional: true}
config:
  upstreams:
    - {name: base, url: "https://api.openai.com", api_key: "${ABGATE_BASE_API_KEY}"}
    - {name: candidate, url: "http://vllm.models.svc:8000", api_key: "${ABGATE_CANDIDATE_API_KEY}"}
  experiments:
    - id: support-ft
      variants:
        - {name: base, upstream: base, model: gpt-4o-mini}
        - {name: ft, upstream: candidate, model: support-lora, weight: 5}
      rollout: {}
  routes:
    - {alias: support-assistant, experiment: support-ft}
`)
	if len(o.secrets) != 0 {
		t.Errorf("the chart must not create a Secret next to an existing one")
	}
	refs := secretRefs(o.deployments[0])
	if refs["ABGATE_TOKEN_SECRET"] != "abgate-from-vault/token-secret" || refs["ABGATE_CANDIDATE_API_KEY"] != "abgate-from-vault/vllm" {
		t.Errorf("secret references %v", refs)
	}
	if strings.Contains(o.notes, "create secret") {
		t.Errorf("NOTES asks to create a Secret that exists:\n%s", o.notes)
	}
}

func TestChartCreatesSecret(t *testing.T) {
	o := renderOK(t, `
secrets:
  create: true
  values: {token-secret: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t, admin-token: a, viewer-token: v, feedback-token: f, base-api-key: k}
`)
	if len(o.secrets) != 1 || o.secrets[0].Name != "prod-abgate" || o.secrets[0].StringData["token-secret"] == "" {
		t.Fatalf("Secret %+v", o.secrets)
	}
}

// Values the chart must refuse, with a message that says what to do.
func TestRefusedValues(t *testing.T) {
	for _, tc := range []struct{ values, want string }{
		{"terminationGracePeriodSeconds: 40", "must be above the drain budget"},
		{"shutdown: {timeoutSeconds: 60}\nterminationGracePeriodSeconds: 70", "= 78"},
		{"secrets: {create: true, values: {admin-token: x}}", "secrets.values.token-secret is required"},
		{"redis: {addrs: null}", "redis.addrs"},
	} {
		_, err := render(t, tc.values)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %q: error %v, want %q", tc.values, err, tc.want)
		}
	}
}

// TestLint runs what `helm lint --strict` runs (Chart.yaml, values,
// templates, kubeVersion) for the oldest Kubernetes the chart supports.
func TestLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion("v1.30.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, values := range []string{"", "redis: {bundled: {enabled: true}}\nautoscaling: {enabled: true}\nmetrics: {serviceMonitor: {enabled: true}}"} {
		vals, err := chartutil.ReadValues([]byte(values))
		if err != nil {
			t.Fatal(err)
		}
		l := lint.AllWithKubeVersion(chartDir, vals, namespace, kv)
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint (values %q): %s", values, m)
			} else {
				t.Logf("helm lint: %s", m)
			}
		}
	}
}
