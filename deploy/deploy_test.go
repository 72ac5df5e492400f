// Package deploy holds the container, Compose and Helm deployment files;
// its tests check them by reading: the Compose file's structure, the
// shipped config against abgate's own validator, and the Dockerfile's
// promises. The Helm chart has its own module (helm/chart_test).
package deploy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
	"go.yaml.in/yaml/v3"
)

// compose is the part of the Compose specification these files use.
// Unknown keys are rejected (KnownFields), so a typo fails here rather
// than being ignored by docker compose.
type compose struct {
	Name     string              `yaml:"name"`
	Services map[string]service  `yaml:"services"`
	Volumes  map[string]struct{} `yaml:"volumes"`
}

type service struct {
	Image       string                  `yaml:"image"`
	Build       *build                  `yaml:"build"`
	Command     []string                `yaml:"command"`
	Deploy      *struct{ Replicas int } `yaml:"deploy"`
	EnvFile     []string                `yaml:"env_file"`
	Environment map[string]string       `yaml:"environment"`
	Volumes     []string                `yaml:"volumes"`
	Ports       []string                `yaml:"ports"`
	Expose      []string                `yaml:"expose"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
	ReadOnly        bool     `yaml:"read_only"`
	CapDrop         []string `yaml:"cap_drop"`
	SecurityOpt     []string `yaml:"security_opt"`
	Restart         string   `yaml:"restart"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	f, err := os.Open("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var c compose
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"redis", "abgate", "haproxy"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no service %q (have %v)", name, keys(c.Services))
		}
	}

	redis := c.Services["redis"]
	if !hasArgs(redis.Command, "redis-server", "--appendonly", "yes") {
		t.Errorf("redis must run with AOF: command %q", redis.Command)
	}
	if i := slices.Index(redis.Command, "--maxmemory-policy"); i < 0 || redis.Command[i+1] != "noeviction" {
		t.Errorf("redis must not evict statistics: command %q", redis.Command)
	}
	if !slices.ContainsFunc(redis.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
		t.Errorf("redis keeps /data on no volume: %q", redis.Volumes)
	}
	for _, v := range redis.Volumes {
		if vol, _, _ := strings.Cut(v, ":"); !has(c.Volumes, vol) {
			t.Errorf("redis volume %q is not declared under volumes", vol)
		}
	}
	if len(redis.Ports) > 0 {
		t.Errorf("redis is published on the host (%q); only the gateways need it", redis.Ports)
	}
	if redis.Healthcheck == nil || !slices.Contains(redis.Healthcheck.Test, "ping") {
		t.Errorf("redis healthcheck: %+v", redis.Healthcheck)
	}

	gw := c.Services["abgate"]
	if gw.Build == nil || gw.Build.Context != ".." || gw.Build.Dockerfile != "Dockerfile" {
		t.Errorf("abgate must be built from the repository's Dockerfile: %+v", gw.Build)
	}
	if _, err := os.Stat("../" + gw.Build.Dockerfile); err != nil {
		t.Error(err)
	}
	if gw.Deploy == nil || gw.Deploy.Replicas != 2 {
		t.Errorf("want two gateway replicas: %+v", gw.Deploy)
	}
	if gw.DependsOn["redis"].Condition != "service_healthy" {
		t.Errorf("abgate must wait for a healthy redis: %+v", gw.DependsOn)
	}
	if gw.Healthcheck == nil || !hasArgs(gw.Healthcheck.Test, "CMD", "/abgate", "healthcheck") {
		t.Fatalf("abgate healthcheck must run the binary (distroless has no shell): %+v", gw.Healthcheck)
	}
	if u := gw.Healthcheck.Test[slices.Index(gw.Healthcheck.Test, "--url")+1]; u != "http://127.0.0.1:8081/healthz" {
		t.Errorf("abgate healthcheck URL %q, want the admin listener's /healthz", u)
	}
	if !slices.Contains(gw.EnvFile, ".env") {
		t.Errorf("abgate secrets must come from .env: env_file %q", gw.EnvFile)
	}
	if !slices.Contains(gw.Volumes, "./abgate.yaml:/etc/abgate/abgate.yaml:ro") {
		t.Errorf("abgate must mount deploy/abgate.yaml where the image reads it: %q", gw.Volumes)
	}
	if !slices.Contains(gw.Expose, "8080") || !slices.Contains(gw.Expose, "8081") {
		t.Errorf("abgate exposes %q, want 8080 and 8081", gw.Expose)
	}
	if len(gw.Ports) > 0 {
		t.Errorf("replicas are reached through haproxy, not published: %q", gw.Ports)
	}
	if !gw.ReadOnly || !slices.Contains(gw.CapDrop, "ALL") {
		t.Errorf("abgate should run read-only without capabilities")
	}
	if gw.StopGracePeriod != "50s" {
		t.Errorf("stop_grace_period %q: keep it above shutdown_timeout + 13s", gw.StopGracePeriod)
	}

	front := c.Services["haproxy"]
	if front.DependsOn["abgate"].Condition != "service_healthy" {
		t.Errorf("haproxy must wait for healthy gateways: %+v", front.DependsOn)
	}
	for _, port := range []string{"8080", "8081"} {
		want := "${ABGATE_BIND:-127.0.0.1}:" + port + ":" + port
		if !slices.Contains(front.Ports, want) {
			t.Errorf("haproxy ports %q: missing %q", front.Ports, want)
		}
	}
	if !slices.Contains(front.Volumes, "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro") {
		t.Errorf("haproxy config not mounted: %q", front.Volumes)
	}
	for _, s := range c.Services {
		for _, v := range s.Volumes {
			if src, _, _ := strings.Cut(v, ":"); strings.HasPrefix(src, "./") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("mounted file: %v", err)
				}
			}
		}
	}
}

// TestHAProxyConfig: both frontends lead to the matching abgate listener,
// and a replica is routed to only while /readyz answers 200.
func TestHAProxyConfig(t *testing.T) {
	b, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, want := range []string{
		"bind :8080", "bind :8081",
		"server-template abgate 4 abgate:8080", "server-template abgate 4 abgate:8081",
		"nameserver dns 127.0.0.11:53",
		"retry-on conn-failure",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	if n := strings.Count(cfg, "http-check send meth GET uri /readyz"); n != 2 {
		t.Errorf("%d backends check /readyz, want 2", n)
	}
	if strings.Contains(cfg, "empty-response") || strings.Contains(cfg, "all-retryable-errors") {
		t.Errorf("haproxy must not re-send a request a replica may have forwarded")
	}
}

// envExample reads .env.example: NAME=VALUE lines, comments on their own.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
			t.Fatalf(".env.example:%d: not NAME=VALUE", n)
		}
		if strings.Contains(v, "#") {
			t.Errorf(".env.example:%d: a comment after a value becomes part of it for docker run --env-file", n)
		}
		env[k] = v
	}
	return env
}

// TestShippedConfig validates deploy/abgate.yaml as `abgate validate`
// (serve mode) does, with the environment Compose gives a replica:
// .env.example filled in as its comments say, plus compose's environment.
func TestShippedConfig(t *testing.T) {
	data, err := os.ReadFile("abgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := envExample(t)
	for k, v := range loadCompose(t).Services["abgate"].Environment {
		env[k] = v
	}
	for k, v := range env {
		if strings.HasPrefix(k, "ABGATE_TOKEN_SECRET") && v != "" {
			t.Errorf(".env.example must not ship a secret: %s is set", k)
		}
	}

	// As shipped, .env.example is not enough: the secrets are empty and
	// abgate says which.
	lookupAsShipped := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	_, err = experiments.ParseForServe(data, lookupAsShipped)
	var verr experiments.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "server.token_secret") {
		t.Errorf("with the empty .env.example, want a token_secret error, got %v", err)
	}

	// Filled in: every empty value gets what `openssl rand -base64 48`
	// would give (64 characters).
	used := map[string]bool{}
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		if !ok {
			t.Errorf("abgate.yaml references ${%s}, which neither .env.example nor compose.yaml sets", name)
			return "", false
		}
		used[name] = true
		if v == "" {
			v = strings.Repeat("A", 64)
		}
		return v, true
	}
	cfg, err := experiments.ParseForServe(data, lookup)
	if err != nil {
		t.Fatalf("deploy/abgate.yaml with a filled-in .env: %v", err)
	}
	for k := range env {
		if !used[k] && k != "ABGATE_BIND" {
			t.Errorf(".env.example sets %s, which abgate.yaml does not use", k)
		}
	}

	// Inside a container: every interface, the ports the image exposes.
	if cfg.Server.Listen != "0.0.0.0:8080" || cfg.Server.AdminListen != "0.0.0.0:8081" {
		t.Errorf("listen %q, admin_listen %q: want 0.0.0.0:8080 and 0.0.0.0:8081", cfg.Server.Listen, cfg.Server.AdminListen)
	}
	if len(cfg.Redis.Addrs) != 1 || cfg.Redis.Addrs[0] != "redis:6379" {
		t.Errorf("redis.addrs %q, want the compose service", cfg.Redis.Addrs)
	}
	roles := map[string]bool{}
	for _, tok := range cfg.Auth.Tokens {
		roles[tok.Role] = true
	}
	if !roles["admin"] || !roles["viewer"] || !roles["feedback"] || cfg.Auth.OpenReads || cfg.Auth.OpenFeedback {
		t.Errorf("want admin, viewer and feedback tokens and nothing open: %+v", cfg.Auth)
	}
}

// TestDockerfile checks what the image promises, by reading.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(b), "\\\n", " ")
	var stages, user, expose, healthcheck, cmd []string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			stages = append(stages, line)
		case "USER":
			user = f[1:]
		case "EXPOSE":
			expose = append(expose, f[1:]...)
		case "HEALTHCHECK":
			healthcheck = f[1:]
		case "CMD":
			cmd = f[1:]
		}
	}
	if len(stages) < 2 || !strings.Contains(stages[len(stages)-1], "distroless/static") {
		t.Errorf("want a multi-stage build ending in distroless static: %q", stages)
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("the binary must be static (CGO_ENABLED=0)")
	}
	if len(user) != 1 || !regexp.MustCompile(`^[1-9][0-9]*(:[0-9]+)?$`).MatchString(user[0]) {
		t.Errorf("USER %q: want a numeric non-root uid (runAsNonRoot can only verify a number)", user)
	}
	if !slices.Contains(expose, "8080") || !slices.Contains(expose, "8081") {
		t.Errorf("EXPOSE %q, want 8080 and 8081", expose)
	}
	hc := strings.Join(healthcheck, " ")
	if !strings.Contains(hc, `CMD ["/abgate", "healthcheck", "--url", "http://127.0.0.1:8081/healthz"`) {
		t.Errorf("HEALTHCHECK %q: want the binary's healthcheck on the admin listener", hc)
	}
	if !strings.Contains(df, "COPY deploy/abgate.yaml /etc/abgate/abgate.yaml") ||
		strings.Join(cmd, " ") != `["serve", "--config", "/etc/abgate/abgate.yaml"]` {
		t.Errorf("the image must serve deploy/abgate.yaml from /etc/abgate/abgate.yaml: CMD %q", cmd)
	}

	// The HEALTHCHECK's port is the admin listener of the shipped config.
	data, err := os.ReadFile("abgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Server struct {
			AdminListen string `yaml:"admin_listen"`
		} `yaml:"server"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if _, port, _ := net.SplitHostPort(raw.Server.AdminListen); !strings.Contains(hc, "127.0.0.1:"+port+"/") {
		t.Errorf("HEALTHCHECK %q does not probe admin_listen %q", hc, raw.Server.AdminListen)
	}
}

// TestDockerignore: secrets never enter the build context.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	for _, want := range []string{".git", "**/.env"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
}

func hasArgs(cmd []string, want ...string) bool {
	for i := 0; i+len(want) <= len(cmd); i++ {
		if slices.Equal(cmd[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func has[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
