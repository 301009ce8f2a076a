package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/scripts/testenv"
)

// The secrets the tests hand orderflow; none may ever appear in its output.
const (
	pgSecret    = "pg-Secret-7c1e9b"     //nolint:gosec // G101: a test secret
	kafkaSecret = "kafka-Secret-0a4d2f"  //nolint:gosec // G101: a test secret
	apiSecret   = "api-Secret-5e8b3c9d1" //nolint:gosec // G101: a test secret
)

func TestKafkaOptionsBuildAndRefuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, selfSignedPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := kafkaConfig{brokers: "127.0.0.1:9093"}
	tests := []struct {
		name string
		edit func(*kafkaConfig)
		want string // substring of the error; "" means it builds
	}{
		{"plain", func(*kafkaConfig) {}, ""},
		{"SCRAM-SHA-256", func(k *kafkaConfig) { k.saslMechanism, k.username, k.password = "SCRAM-SHA-256", "svc", kafkaSecret }, ""},
		{"SCRAM-SHA-512 lower case", func(k *kafkaConfig) { k.saslMechanism, k.username, k.password = "scram-sha-512", "svc", kafkaSecret }, ""},
		{"PLAIN", func(k *kafkaConfig) { k.saslMechanism, k.username, k.password = "PLAIN", "svc", kafkaSecret }, ""},
		{"TLS with the system CAs", func(k *kafkaConfig) { k.tls = true }, ""},
		{"TLS with a CA file and SCRAM", func(k *kafkaConfig) {
			k.tlsCAFile, k.saslMechanism, k.username, k.password = caFile, "SCRAM-SHA-512", "svc", kafkaSecret
		}, ""},
		{"unknown mechanism", func(k *kafkaConfig) { k.saslMechanism, k.username, k.password = "GSSAPI", "svc", kafkaSecret }, "is not SCRAM-SHA-256"},
		{"mechanism without user", func(k *kafkaConfig) { k.saslMechanism, k.password = "SCRAM-SHA-256", kafkaSecret }, "needs -kafka-user"},
		{"mechanism without password", func(k *kafkaConfig) { k.saslMechanism, k.username = "SCRAM-SHA-256", "svc" }, "-kafka-password"},
		{"missing CA file", func(k *kafkaConfig) { k.tlsCAFile = filepath.Join(dir, "absent.pem") }, "-kafka-tls-ca"},
		{"CA file without certificates", func(k *kafkaConfig) { k.tlsCAFile = notPEM }, "no PEM certificates"},
		{"no brokers", func(k *kafkaConfig) { k.brokers = " , " }, "-brokers"},
		{"broker without port", func(k *kafkaConfig) { k.brokers = "kafka.internal" }, "not host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k := ok
			tt.edit(&k)
			opts, err := k.opts()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "" && len(opts) < 2:
				t.Fatalf("%d options", len(opts))
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), kafkaSecret):
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orderflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// withPassword puts a password into a PostgreSQL URL. The local test server
// trusts loopback connections, so the password is sent and ignored.
func withPassword(t *testing.T, raw, password string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

// serveProc is an orderflow process whose combined output the test reads.
type serveProc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startOrderflow(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(testenv.OrderflowBinary(t), args...)
	// Only what the test gives: no inherited DATABASE_URL or keys.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p := &serveProc{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *serveProc) stop(t *testing.T) string {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("did not stop within 30 s of SIGTERM:\n%s", p.out.String())
	}
	return p.out.String()
}

// waitOutput polls until the process printed something matching re.
func (p *serveProc) waitOutput(t *testing.T, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !re.MatchString(p.out.String()) {
		select {
		case <-p.done:
			t.Fatalf("exited before printing %v:\n%s", re, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("printed no %v within 60 s:\n%s", re, p.out.String())
		}
	}
}

func noSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{pgSecret, kafkaSecret, apiSecret} {
		if strings.Contains(out, s) {
			t.Errorf("%s shows a secret (%s):\n%s", what, s, out)
		}
	}
}

func waitStatus(t *testing.T, p *serveProc, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == want {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("exited while waiting for %s to answer %d:\n%s", url, want, p.out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within 60 s (%v):\n%s", url, want, err, p.out.String())
		}
	}
}

// TestSecretsNeverPrinted runs orderflow with a PostgreSQL password in
// DATABASE_URL, a Kafka password and an API key, at debug level, through a
// normal start and stop, failed connections and bad settings, and checks
// that none of them shows in any output, -h included.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	brokers := strings.Join(testenv.Kafka(t), ",")
	dbURL := withPassword(t, testenv.DatabaseURL(t), pgSecret)
	prefix := testenv.TopicPrefix(t)
	base := []string{
		"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + brokers, "ORDERFLOW_TOPIC_PREFIX=" + prefix,
		"ORDERFLOW_GROUP=" + prefix + "group", "ORDERFLOW_PARTITIONS=2", "ORDERFLOW_LOG_LEVEL=debug",
		"ORDERFLOW_KAFKA_USERNAME=svc", "ORDERFLOW_KAFKA_PASSWORD=" + kafkaSecret, "ORDERFLOW_API_KEYS=" + apiSecret + ":write",
	}

	t.Run("help", func(t *testing.T) {
		for _, sub := range []string{"serve", "verify", "migrate", "send", "get"} {
			cmd := exec.Command(testenv.OrderflowBinary(t), sub, "-h")
			cmd.Env = append(os.Environ(), base...)
			out, _ := cmd.CombinedOutput()
			if !strings.Contains(string(out), "$DATABASE_URL") && !strings.Contains(string(out), "$KAFKA_BROKERS") && !strings.Contains(string(out), "$ORDERFLOW_API") {
				t.Errorf("%s -h lists no settings:\n%s", sub, out)
			}
			noSecrets(t, sub+" -h", string(out))
		}
	})

	t.Run("serve", func(t *testing.T) {
		addr := testenv.FreeAddr(t)
		p := startOrderflow(t, append(base, "ORDERFLOW_HTTP_ADDR="+addr), "serve")
		waitStatus(t, p, "http://"+addr+"/readyz", http.StatusOK)
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/v1/orders/sec-1/commands?wait=5s",
			strings.NewReader(`{"action":"create"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+apiSecret)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("POST with the write key: %d", res.StatusCode)
		}
		out := p.stop(t)
		if !strings.Contains(out, "level=DEBUG") {
			t.Errorf("no debug output to check:\n%s", out)
		}
		noSecrets(t, "serve", out)
	})

	t.Run("kafka refuses SCRAM", func(t *testing.T) {
		// The test broker has no SASL listener: every connection fails,
		// and the failures are logged.
		p := startOrderflow(t, append(base, "ORDERFLOW_HTTP_ADDR="+testenv.FreeAddr(t), "ORDERFLOW_KAFKA_SASL_MECHANISM=SCRAM-SHA-512"), "serve")
		p.waitOutput(t, regexp.MustCompile(`waiting for Kafka`))
		noSecrets(t, "serve with SCRAM refused", p.stop(t))
	})

	t.Run("postgresql unreachable", func(t *testing.T) {
		closed := "postgres://orderflow:" + pgSecret + "@" + testenv.FreeAddr(t) + "/orderflow?sslmode=disable"
		p := startOrderflow(t, append(base, "ORDERFLOW_HTTP_ADDR="+testenv.FreeAddr(t), "DATABASE_URL="+closed), "serve")
		p.waitOutput(t, regexp.MustCompile(`waiting for PostgreSQL`))
		noSecrets(t, "serve with PostgreSQL down", p.stop(t))
	})

	t.Run("bad settings", func(t *testing.T) {
		for _, env := range [][]string{
			{"DATABASE_URL=postgres://u:" + pgSecret + "@db:notaport/x"},
			{"DATABASE_URL=postgres://u:" + pgSecret + "@127.0.0.1:5432/x?sslmode=bogus"},
			{"ORDERFLOW_KAFKA_SASL_MECHANISM=NOPE"},
			{"ORDERFLOW_API_KEYS=" + apiSecret + ":admin"},
		} {
			p := startOrderflow(t, append(append([]string{}, base...), append(env, "ORDERFLOW_HTTP_ADDR="+testenv.FreeAddr(t))...), "serve")
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("serve with %v did not exit", env)
			}
			out := p.out.String()
			if p.cmd.ProcessState.Success() || out == "" {
				t.Errorf("serve with %v: %v, output %q", env, p.cmd.ProcessState, out)
			}
			noSecrets(t, "serve with a bad setting", out)
		}
	})
}

// TestPostgresTLSFromURL checks that DATABASE_URL's sslmode is honoured and
// never downgraded: the test server speaks no TLS, so a URL that requires
// TLS must fail to connect, and say why without the password.
func TestPostgresTLSFromURL(t *testing.T) {
	t.Parallel()
	// No password here: a flag refuses one (TestSecretFlagsAreRefused).
	plain := testenv.DatabaseURL(t)
	for _, mode := range []string{"require", "verify-full"} {
		u := strings.Replace(plain, "sslmode=disable", "sslmode="+mode, 1)
		if !strings.Contains(u, "sslmode="+mode) {
			u += map[bool]string{true: "&", false: "?"}[strings.Contains(u, "?")] + "sslmode=" + mode
		}
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code := run(ctx, []string{"migrate", "--database-url", u}, &out, &errOut)
		cancel()
		msg := out.String() + errOut.String()
		if code == 0 {
			t.Errorf("sslmode=%s against a server without TLS: migrate succeeded:\n%s", mode, msg)
		}
		if !strings.Contains(strings.ToLower(msg), "tls") && !strings.Contains(strings.ToLower(msg), "ssl") {
			t.Errorf("sslmode=%s: the error does not say TLS: %s", mode, msg)
		}
		noSecrets(t, "migrate with sslmode="+mode, msg)
	}
}

// TestSecretFlagsAreRefused: a secret given as a flag would show in ps, so
// it is refused, and the refusal does not repeat it.
func TestSecretFlagsAreRefused(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"migrate", "--database-url", "postgres://app:" + pgSecret + "@127.0.0.1:1/x"},
		{"migrate", "--database-url", "host=127.0.0.1 password=" + pgSecret},
		{"migrate", "--database-url", "host=127.0.0.1 password = " + pgSecret},
		{"migrate", "--database-url", "postgres://app@127.0.0.1:1/x?pass%77ord=" + pgSecret},
		{"topics", "--kafka-password", pgSecret},
		{"config", "--api-keys", pgSecret + ":write"},
		{"get", "x", "--api-key", pgSecret},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, &out, &errOut)
		msg := out.String() + errOut.String()
		if code != 2 || !strings.Contains(msg, "shows in ps") {
			t.Errorf("%v: exit %d, %q; want a usage error", args[:2], code, msg)
		}
		noSecrets(t, fmt.Sprint(args[:2]), msg)
	}
}

// TestWritesNeedAWriteKey runs the real API (`orderflow serve --role api`)
// with keys configured and tries every write operation its OpenAPI document
// lists with no key, a wrong key and a read key: each must be refused, and
// only the write key accepted.
func TestWritesNeedAWriteKey(t *testing.T) {
	t.Parallel()
	const readKey, writeKey = "read-key-0123456789abc", "write-key-0123456789abc"
	prefix := testenv.TopicPrefix(t)
	addr := testenv.FreeAddr(t)
	p := startOrderflow(t, []string{
		"DATABASE_URL=" + testenv.DatabaseURL(t), "KAFKA_BROKERS=" + strings.Join(testenv.Kafka(t), ","),
		"ORDERFLOW_TOPIC_PREFIX=" + prefix, "ORDERFLOW_PARTITIONS=2", "ORDERFLOW_HTTP_ADDR=" + addr,
		"ORDERFLOW_API_KEYS=" + readKey + ":read," + writeKey + ":write",
	}, "serve", "--role", "api")
	base := "http://" + addr
	waitStatus(t, p, base+"/readyz", http.StatusOK)

	call := func(method, path, key, body string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode
	}

	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/openapi.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	err = json.NewDecoder(res.Body).Decode(&doc)
	_ = res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	writes := 0
	for path, ops := range doc.Paths {
		concrete := param.ReplaceAllString(path, "sec-1")
		for method := range ops {
			m := strings.ToUpper(method)
			if m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || !strings.HasPrefix(path, "/v1/") {
				continue
			}
			writes++
			body := `{"action":"create"}`
			for _, k := range []struct {
				name, key string
				want      int
			}{
				{"no key", "", http.StatusUnauthorized},
				{"a wrong key", "wrong-key-0123456789abc", http.StatusUnauthorized},
				{"a key with a typo", writeKey + "x", http.StatusUnauthorized},
				{"a read key", readKey, http.StatusForbidden},
			} {
				if got := call(m, concrete, k.key, body); got != k.want {
					t.Errorf("%s %s with %s: %d, want %d", m, concrete, k.name, got, k.want)
				}
			}
			if got := call(m, concrete, writeKey, body); got == http.StatusUnauthorized || got == http.StatusForbidden || got >= 500 {
				t.Errorf("%s %s with the write key: %d", m, concrete, got)
			}
		}
	}
	if writes == 0 {
		t.Fatal("the OpenAPI document lists no write operation")
	}
	// Reads take either key, and no key is refused.
	if got := call(http.MethodGet, "/v1/stats", readKey, ""); got != http.StatusOK {
		t.Errorf("GET /v1/stats with the read key: %d", got)
	}
	if got := call(http.MethodGet, "/v1/stats", "", ""); got != http.StatusUnauthorized {
		t.Errorf("GET /v1/stats with no key: %d", got)
	}
	// Methods the API does not have are not a way around the keys.
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if got := call(m, "/v1/orders/sec-1", "", `{}`); got < 400 {
			t.Errorf("%s /v1/orders/sec-1 with no key: %d", m, got)
		}
	}
	noSecrets(t, "serve --role api", p.stop(t))
	if out := p.out.String(); strings.Contains(out, writeKey) || strings.Contains(out, readKey) {
		t.Errorf("the API's output shows a key:\n%s", out)
	}
}
