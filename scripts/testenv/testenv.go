package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Images used when testenv starts containers; docker-compose.yml pins the same ones and
// scripts/compose_test.go keeps the three in step with scripts/stack.sh.
const (
	KafkaImage    = "apache/kafka:4.1.2"
	PostgresImage = "postgres:15"
)

// setupTimeout bounds each call that talks to a server while setting a test up, so a
// hung server fails the test instead of stalling the whole run until go test's timeout.
const setupTimeout = 30 * time.Second

// Kafka returns the seed broker addresses of a real Kafka broker: KAFKA_BROKERS
// (comma-separated) when set, else a container when a Docker engine answers. Otherwise
// it skips the test, or fails it in CI.
func Kafka(tb testing.TB) []string {
	tb.Helper()
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		var brokers []string
		for b := range strings.SplitSeq(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		return brokers
	}
	if dockerAvailable() {
		brokers, err := kafkaContainer()
		if err != nil {
			tb.Fatalf("testenv: start Kafka container %s: %v", KafkaImage, err)
		}
		return brokers
	}
	unavailable(tb, "KAFKA_BROKERS")
	return nil
}

// PostgresURL returns the URL of a real PostgreSQL server, as a role allowed to create
// databases: DATABASE_URL when set, else a container when a Docker engine answers.
// Otherwise it skips the test, or fails it in CI. Tests that write should prefer
// [DatabaseURL] or [Pool], which isolate them.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return v
	}
	if dockerAvailable() {
		u, err := postgresContainer()
		if err != nil {
			tb.Fatalf("testenv: start PostgreSQL container %s: %v", PostgresImage, err)
		}
		return u
	}
	unavailable(tb, "DATABASE_URL")
	return ""
}

// DatabaseURL creates a fresh, empty database on the server of [PostgresURL] and returns
// its URL, for code under test that connects by itself (a process, a migration). The
// database is dropped, with any connections left open, when the test ends.
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	admin := PostgresURL(tb)
	name := "orderflow_test_" + randomHex(6)

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("testenv: connect to PostgreSQL to create a test database: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("testenv: create database %s: %v", name, err)
	}

	tb.Cleanup(func() {
		// The test's own context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("testenv: connect to PostgreSQL to drop database %s: %v", name, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		// FORCE: a process under test may still hold connections.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return withDatabase(tb, admin, name)
}

// Pool returns a pool connected to a fresh database of its own (see [DatabaseURL]),
// closed when the test ends.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	dbURL := DatabaseURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		tb.Fatalf("testenv: open pool: %v", err)
	}
	// Registered after DatabaseURL's cleanup, so it runs first: close, then drop.
	tb.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		tb.Fatalf("testenv: ping test database: %v", err)
	}
	return pool
}

// TopicPrefix returns a prefix unique to this call, such as "t3f9a1c07.", so tests that
// share one broker never see each other's topics or consumer groups.
func TopicPrefix(tb testing.TB) string {
	tb.Helper()
	return "t" + randomHex(4) + "."
}

// withDatabase points a PostgreSQL connection string, URL or keyword/value form, at
// another database on the same server.
func withDatabase(tb testing.TB, conn, name string) string {
	tb.Helper()
	if !strings.Contains(conn, "://") {
		// In keyword/value form the last setting of a keyword wins.
		return conn + " dbname=" + name
	}
	u, err := url.Parse(conn)
	if err != nil {
		tb.Fatalf("testenv: parse PostgreSQL URL: %v", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// unavailable skips the test, or fails it in CI where a missing service is a broken
// pipeline, not a laptop without Docker.
func unavailable(tb testing.TB, envVar string) {
	tb.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		tb.Fatalf("testenv: %s is not set and no Docker engine answers, and CI=true: "+
			"run the tests with `make test`, which starts Kafka and PostgreSQL and exports their addresses", envVar)
	}
	tb.Skip(envVar + " not set and no Docker engine: run `make test` (starts Kafka and PostgreSQL) " +
		"or eval \"$(make -s env)\" after `make up`")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program rather than return an error
	return hex.EncodeToString(b)
}

// KafkaAdmin returns an admin client of the test broker, closed when the
// test ends. Its metadata is refreshed after 100 ms rather than kgo's 5 s, so
// a topic a test has just created shows at once.
func KafkaAdmin(tb testing.TB) *kadm.Client {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(Kafka(tb)...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}
