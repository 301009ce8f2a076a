package scripts_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/orderflow/orderflow/scripts/testenv"
)

// The Docker path (docker-compose.yml, Dockerfile, testenv's containers) and the native
// path (scripts/stack.sh) must run the same versions with the same settings, or a test
// that passes for one user fails for another. Nothing here needs a running service.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// The tests run in scripts/, the package's folder.
const repoRoot = ".."

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	for _, name := range []string{"kafka", "postgres", "orderflow"} {
		if _, ok := f.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no %q service", name)
		}
	}
	return f
}

// pinnedKafkaVersion reads the one pin, KAFKA_VERSION= in scripts/stack.sh.
func pinnedKafkaVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("stack.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^KAFKA_VERSION=([0-9][0-9A-Za-z.\-]*)$`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("scripts/stack.sh has no KAFKA_VERSION= line")
	}
	return string(m[1])
}

func TestComposeKafkaMatchesStack(t *testing.T) {
	t.Parallel()
	want := "apache/kafka:" + pinnedKafkaVersion(t)
	if got := readCompose(t).Services["kafka"].Image; got != want {
		t.Errorf("docker-compose.yml kafka image = %q, scripts/stack.sh pins %q", got, want)
	}
	if testenv.KafkaImage != want {
		t.Errorf("testenv.KafkaImage = %q, scripts/stack.sh pins %q", testenv.KafkaImage, want)
	}
}

func TestComposePostgresMatchesTestenv(t *testing.T) {
	t.Parallel()
	image := readCompose(t).Services["postgres"].Image
	if image != testenv.PostgresImage {
		t.Errorf("docker-compose.yml postgres image = %q, testenv starts %q", image, testenv.PostgresImage)
	}
	_, tag, _ := strings.Cut(image, ":")
	major, err := strconv.Atoi(strings.SplitN(tag, ".", 2)[0])
	// The architecture requires PostgreSQL 15+; an untagged or "latest" image is no pin.
	if err != nil || major < 15 {
		t.Errorf("postgres image %q: want an explicit major version >= 15", image)
	}
}

func TestComposeOrderflowService(t *testing.T) {
	t.Parallel()
	f := readCompose(t)
	svc := f.Services["orderflow"]
	if svc.Build == nil || svc.Build.Context != "." || (svc.Build.Dockerfile != "" && svc.Build.Dockerfile != "Dockerfile") {
		t.Errorf("orderflow must build from ./Dockerfile, got %+v", svc.Build)
	}
	// The same variables as the native path (scripts/stack.sh env).
	for _, name := range []string{"KAFKA_BROKERS", "DATABASE_URL", "ORDERFLOW_HTTP_ADDR"} {
		if svc.Environment[name] == "" {
			t.Errorf("orderflow service does not set %s", name)
		}
	}
	if addr := svc.Environment["ORDERFLOW_HTTP_ADDR"]; !strings.HasPrefix(addr, "0.0.0.0:") {
		t.Errorf("ORDERFLOW_HTTP_ADDR = %q: in a container it must listen on 0.0.0.0 to be reachable", addr)
	}
	// Off loopback, serve refuses to start without API keys.
	if svc.Environment["ORDERFLOW_API_KEYS"] == "" && svc.Environment["ORDERFLOW_API_KEYS_FILE"] == "" {
		t.Error("orderflow service listens on 0.0.0.0 without ORDERFLOW_API_KEYS(_FILE): serve would refuse to start")
	}
	for _, dep := range []string{"kafka", "postgres"} {
		if got := svc.DependsOn[dep].Condition; got != "service_healthy" {
			t.Errorf("orderflow depends_on %s condition = %q, want service_healthy", dep, got)
		}
		if f.Services[dep].Healthcheck == nil || len(f.Services[dep].Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck, so service_healthy would never hold", dep)
		}
	}
	// Like the native stack, nothing listens beyond this machine.
	for name, s := range f.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q on all interfaces; bind it to 127.0.0.1", name, p)
			}
		}
	}
}

func TestDockerfileRunsAsNonRoot(t *testing.T) {
	t.Parallel()
	file, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = file.Close() }() // read-only: a close error loses nothing
	// Only the final stage's USER matters: it is the image that runs.
	var user string
	var stages int
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			stages++
			user = ""
		case "USER":
			user = fields[1]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if stages < 2 {
		t.Errorf("Dockerfile has %d stage(s); want a build stage and a small runtime stage", stages)
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("the Dockerfile's final stage runs as %q; want a non-root USER", user)
	}
}
