package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestMaskDatabaseURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"postgres://app:s3cret@db.internal:5432/orderflow?sslmode=verify-full", "postgres://app:****@db.internal:5432/orderflow?sslmode=verify-full"},
		{"postgres://app:s3c%40ret@db/orderflow", "postgres://app:****@db/orderflow"},
		{"postgres://app@db/orderflow?sslmode=disable", "postgres://app@db/orderflow?sslmode=disable"},
		{"postgres://db/orderflow?user=app&password=s3cret&sslmode=require", "postgres://db/orderflow?user=app&password=****&sslmode=require"},
		{"postgresql://app:s3cret@db/orderflow?sslpassword=s3cret#s3cret", "postgresql://app:****@db/orderflow?sslpassword=****"},
		{"host=db user=app password=s3cret dbname=orderflow", "host=db user=app password=**** dbname=orderflow"},
		{"host=db password = 's3 cret\\' x' dbname=orderflow", "host=db password=**** dbname=orderflow"},
		{"postgres://app:s3cret@db:port/x", "****"},               // does not parse: mask it all
		{"postgres://app@db/orderflow?pass%77ord=s3cret", "****"}, // an encoded name: mask it all
	} {
		got := maskDatabaseURL(c.in)
		if got != c.want || strings.Contains(got, "s3") {
			t.Errorf("maskDatabaseURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// runCmd runs the orderflow command line in-process.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestConfigCommand checks that `orderflow config` shows what serve would
// use, where each value came from (flag over environment over default),
// and never a secret.
func TestConfigCommand(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://app:pg-secret-1@db.internal:5432/orderflow?sslmode=verify-full")
	unsetenv(t, "ORDERFLOW_DATABASE_URL", "KAFKA_BROKERS")
	t.Setenv("ORDERFLOW_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("ORDERFLOW_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("ORDERFLOW_KAFKA_USERNAME", "orderflow")
	t.Setenv("ORDERFLOW_KAFKA_PASSWORD", "kafka-secret-2")
	t.Setenv("ORDERFLOW_API_KEYS", "api-secret-3-0123456789:write")
	t.Setenv("ORDERFLOW_MAX_BATCH", "100")
	t.Setenv("ORDERFLOW_ROLE", "api")
	// Not a string: read from the environment by parsing, not by
	// FlagSet.Set, which would report it as a flag.
	t.Setenv("ORDERFLOW_SESSION_TIMEOUT", "20s")

	code, out, errOut := runCmd("config", "--max-batch", "500", "--http-addr", "0.0.0.0:8080", "-json")
	if code != 0 {
		t.Fatalf("config exited %d: %s", code, errOut)
	}
	for _, secret := range []string{"pg-secret-1", "kafka-secret-2", "api-secret-3"} {
		if strings.Contains(out+errOut, secret) {
			t.Errorf("config printed %s:\n%s", secret, out)
		}
	}
	var got struct {
		Settings []effectiveSetting `json:"settings"`
		Valid    bool               `json:"valid"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	by := map[string]effectiveSetting{}
	for _, s := range got.Settings {
		by[s.Name] = s
	}
	for name, want := range map[string]effectiveSetting{
		"max-batch":       {Value: "500", Source: "flag"},
		"role":            {Value: "api", Source: "$ORDERFLOW_ROLE"},
		"brokers":         {Value: "k1:9092,k2:9092", Source: "$ORDERFLOW_KAFKA_BROKERS"},
		"database-url":    {Value: "postgres://app:****@db.internal:5432/orderflow?sslmode=verify-full", Source: "$DATABASE_URL"}, //nolint:gosec // G101: the masked form, no password
		"kafka-password":  {Value: "****", Source: "$ORDERFLOW_KAFKA_PASSWORD"},
		"api-keys":        {Value: "****", Source: "$ORDERFLOW_API_KEYS"},
		"partitions":      {Value: "12", Source: "default"},
		"db-pool-size":    {Value: "20", Source: "default (0 raised to partitions + 8)"},
		"stuck-after":     {Value: "1h0m0s", Source: "default"},
		"monitor":         {Value: "auto (on in role api)", Source: "default"},
		"session-timeout": {Value: "20s", Source: "$ORDERFLOW_SESSION_TIMEOUT"},
	} {
		if s := by[name]; s.Value != want.Value || s.Source != want.Source {
			t.Errorf("-%s: %q from %q, want %q from %q", name, s.Value, s.Source, want.Value, want.Source)
		}
	}
	if !got.Valid {
		t.Errorf("valid = false for a valid configuration")
	}

	// The table form carries the same: without the flag, -max-batch comes
	// from its variable.
	code, out, _ = runCmd("config")
	if code != 0 || !strings.Contains(out, "-max-batch") || !strings.Contains(out, "$ORDERFLOW_MAX_BATCH") || strings.Contains(out, "pg-secret-1") ||
		!regexp.MustCompile(`-max-batch\s+\$ORDERFLOW_MAX_BATCH\s+100\s+\$ORDERFLOW_MAX_BATCH`).MatchString(out) {
		t.Errorf("config table (exit %d):\n%s", code, out)
	}
}

// TestInvalidConfiguration checks that serve and config refuse a bad
// configuration before connecting anywhere, naming every bad setting.
func TestInvalidConfiguration(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://app:pg-secret-1@127.0.0.1:1/orderflow")
	t.Setenv("ORDERFLOW_MAX_BATCH", "0")
	unsetenv(t, "ORDERFLOW_API_KEYS", "ORDERFLOW_API_KEYS_FILE")
	args := []string{"--role", "everything", "--http-addr", "0.0.0.0:8080", "--partitions", "0", "--topic-prefix", "a b",
		"--stuck-after", "10ms", "--log-format", "xml", "--kafka-sasl", "GSSAPI", "--pprof-addr", "0.0.0.0:6060"}
	wants := []string{
		"-pprof-addr ($ORDERFLOW_PPROF_ADDR)",
		"-role ($ORDERFLOW_ROLE)", "-max-batch ($ORDERFLOW_MAX_BATCH)", "-partitions ($ORDERFLOW_PARTITIONS)",
		"-topic-prefix ($ORDERFLOW_TOPIC_PREFIX)", "-stuck-after ($ORDERFLOW_STUCK_AFTER)", "-log-format ($ORDERFLOW_LOG_FORMAT)",
		"-kafka-sasl ($ORDERFLOW_KAFKA_SASL_MECHANISM)",
	}
	code, _, errOut := runCmd(append([]string{"serve"}, args...)...)
	if code != 2 {
		t.Fatalf("serve exited %d, want 2 (usage): %s", code, errOut)
	}
	for _, w := range wants {
		if !strings.Contains(errOut, w) {
			t.Errorf("serve's error does not name %s:\n%s", w, errOut)
		}
	}
	code, _, errOut = runCmd(append([]string{"config"}, args...)...)
	if code != 1 || !strings.Contains(errOut, "-max-batch ($ORDERFLOW_MAX_BATCH)") || strings.Contains(errOut, "pg-secret-1") {
		t.Errorf("config exited %d: %s", code, errOut)
	}

	// Without API keys the API may only listen on loopback; the processor
	// role serves no API, so there it is fine.
	t.Setenv("ORDERFLOW_MAX_BATCH", "100")
	code, _, errOut = runCmd("config", "--http-addr", "0.0.0.0:8080")
	if code != 1 || !strings.Contains(errOut, "-http-addr ($ORDERFLOW_HTTP_ADDR)") {
		t.Errorf("api on 0.0.0.0 without keys: exit %d: %s", code, errOut)
	}
	if code, _, errOut = runCmd("config", "--http-addr", "0.0.0.0:8080", "--role", "processor"); code != 0 {
		t.Errorf("processor on 0.0.0.0: exit %d: %s", code, errOut)
	}

	// A malformed variable is named, not ignored.
	t.Setenv("ORDERFLOW_SESSION_TIMEOUT", "ten seconds")
	if code, _, errOut = runCmd("config"); code != 2 || !strings.Contains(errOut, "$ORDERFLOW_SESSION_TIMEOUT (for -session-timeout)") {
		t.Errorf("malformed duration: exit %d: %s", code, errOut)
	}
}

// TestEnvAliases checks that both spellings of a variable work and that
// two that disagree are refused rather than one silently winning.
func TestEnvAliases(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://a@db1/orderflow")
	t.Setenv("ORDERFLOW_DATABASE_URL", "postgres://a@db1/orderflow")
	if code, _, errOut := runCmd("config"); code != 0 {
		t.Fatalf("equal values: exit %d: %s", code, errOut)
	}
	t.Setenv("ORDERFLOW_DATABASE_URL", "postgres://a@db2/orderflow")
	code, _, errOut := runCmd("config")
	if code != 2 || !strings.Contains(errOut, "$DATABASE_URL and $ORDERFLOW_DATABASE_URL") {
		t.Fatalf("different values: exit %d: %s", code, errOut)
	}
}

// unsetenv unsets variables for the test and restores them after it (an
// empty variable is a value, so t.Setenv(name, "") is not the same).
func unsetenv(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		t.Setenv(n, "")
		if err := os.Unsetenv(n); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadmeConfiguration keeps the README's Configuration table in step
// with serve's settings: every flag and each of its variables is listed.
func TestReadmeConfiguration(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(readme, []byte("## Configuration\n"))
	end := bytes.Index(readme, []byte("\n## More"))
	if start < 0 || end < start {
		t.Fatal("README.md has no Configuration section before More")
	}
	section := string(readme[start:end])
	var c serveConfig
	f := newFlags("serve")
	c.register(f)
	for _, s := range f.st.settings {
		if !strings.Contains(section, "`-"+s.name+"`") {
			t.Errorf("README's Configuration table lacks -%s", s.name)
		}
		for _, env := range s.envs {
			if !strings.Contains(section, "`"+env+"`") {
				t.Errorf("README's Configuration table lacks $%s (for -%s)", env, s.name)
			}
		}
	}
}
