package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaConfig is how every subcommand reaches Kafka.
type kafkaConfig struct {
	brokers       string
	prefix        string
	saslMechanism string
	username      string
	password      string
	tls           bool
	tlsCAFile     string
}

func (k *kafkaConfig) register(f envFlags) {
	f.String(&k.brokers, "brokers", "KAFKA_BROKERS", "127.0.0.1:19092", "Kafka bootstrap brokers, comma-separated")
	f.String(&k.prefix, "topic-prefix", "ORDERFLOW_TOPIC_PREFIX", "", "prefix of the topic names (\"staging.\" gives staging.orders.commands)")
	f.String(&k.saslMechanism, "kafka-sasl", "ORDERFLOW_KAFKA_SASL_MECHANISM", "", "SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN; empty for none")
	f.String(&k.username, "kafka-user", "ORDERFLOW_KAFKA_USERNAME", "", "SASL user name")
	f.Secret(&k.password, "kafka-password", "ORDERFLOW_KAFKA_PASSWORD", "SASL password")
	f.Bool(&k.tls, "kafka-tls", "ORDERFLOW_KAFKA_TLS", false, "connect to Kafka with TLS")
	f.String(&k.tlsCAFile, "kafka-tls-ca", "ORDERFLOW_KAFKA_TLS_CA_FILE", "", "PEM file of CAs to trust for Kafka TLS (default: the system's)")
}

func (k *kafkaConfig) names() topics.Names { return topics.NewNames(k.prefix) }

// opts turns the settings into franz-go options, naming the setting that is
// wrong when one is.
func (k *kafkaConfig) opts() ([]kgo.Opt, error) {
	seeds := splitList(k.brokers)
	if len(seeds) == 0 {
		return nil, errors.New("-brokers ($KAFKA_BROKERS) is empty")
	}
	for _, s := range seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("-brokers ($KAFKA_BROKERS): %q is not host:port", s)
		}
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("orderflow")}
	switch strings.ToUpper(k.saslMechanism) {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.username, Pass: k.password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.username, Pass: k.password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.username, Pass: k.password}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("-kafka-sasl ($ORDERFLOW_KAFKA_SASL_MECHANISM): %q is not SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", k.saslMechanism)
	}
	if k.saslMechanism != "" && (k.username == "" || k.password == "") {
		return nil, errors.New("-kafka-sasl needs -kafka-user ($ORDERFLOW_KAFKA_USERNAME) and -kafka-password ($ORDERFLOW_KAFKA_PASSWORD)")
	}
	if k.tls || k.tlsCAFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.tlsCAFile != "" {
			pem, err := os.ReadFile(k.tlsCAFile)
			if err != nil {
				return nil, fmt.Errorf("-kafka-tls-ca ($ORDERFLOW_KAFKA_TLS_CA_FILE): %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-kafka-tls-ca ($ORDERFLOW_KAFKA_TLS_CA_FILE): no PEM certificates in %s", k.tlsCAFile)
			}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	return opts, nil
}

// dbConfig is how subcommands reach PostgreSQL.
type dbConfig struct {
	url      string
	poolSize int
}

func (d *dbConfig) register(f envFlags) {
	f.Secret(&d.url, "database-url", "DATABASE_URL", "PostgreSQL URL, e.g. postgres://user@host:5432/orderflow (TLS with sslmode=verify-full)")
	f.Int(&d.poolSize, "db-pool-size", "ORDERFLOW_DB_POOL_SIZE", 0, "PostgreSQL connections (0: partitions + 8)")
}

// config parses the URL, without ever echoing it: pgx's messages can quote
// the URL, password and all.
func (d *dbConfig) config() (*pgxpool.Config, error) {
	if d.url == "" {
		return nil, errors.New("-database-url ($DATABASE_URL) is required")
	}
	cfg, err := pgxpool.ParseConfig(d.url)
	if err != nil {
		return nil, errors.New("-database-url ($DATABASE_URL) is not a valid PostgreSQL URL (or names a TLS file that cannot be read)")
	}
	return cfg, nil
}

func (d *dbConfig) open(ctx context.Context, minConns int) (*pgxpool.Pool, error) {
	cfg, err := d.config()
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(max(d.poolSize, minConns)) //nolint:gosec // bounded by flag validation
	// Plan every statement for its arguments, never with a generic plan
	// costed once when the tables were small (see the processor's store package): the
	// API's lookups would keep a sequential scan as the tables grow. A
	// plan_cache_mode in the URL wins.
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return pool, nil
}

// waitPing waits until PostgreSQL answers, so that a processor started
// before its database does not exit in a crash loop.
func waitPing(ctx context.Context, log *slog.Logger, name string, ping func(context.Context) error) error {
	for i := 0; ; i++ {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if i == 0 || i%10 == 0 {
			log.Warn("waiting for "+name, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", name, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// logConfig selects the log format and level.
type logConfig struct {
	format string
	level  string
}

func (l *logConfig) register(f envFlags) {
	f.String(&l.format, "log-format", "ORDERFLOW_LOG_FORMAT", "text", "log format: text or json")
	f.String(&l.level, "log-level", "ORDERFLOW_LOG_LEVEL", "info", "log level: debug, info, warn or error")
}

func (l *logConfig) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("-log-level ($ORDERFLOW_LOG_LEVEL): %q is not debug, info, warn or error", l.level)
	}
	o := &slog.HandlerOptions{Level: lvl}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, o)), nil
	default:
		return nil, fmt.Errorf("-log-format ($ORDERFLOW_LOG_FORMAT): %q is not text or json", l.format)
	}
}
