package testenv

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"
)

// The containers live as long as the test binary: started on first use, shared by all
// tests of the package, removed by testcontainers' Ryuk reaper when the process exits.
var (
	dockerOnce sync.Once
	dockerOK   bool

	kafkaOnce    sync.Once
	kafkaBrokers []string
	kafkaErr     error

	postgresOnce sync.Once
	postgresURL  string
	postgresErr  error
)

// startTimeout covers an image pull on a cold machine.
const startTimeout = 5 * time.Minute

// dockerAvailable reports whether a Docker engine answers, asking once per binary and
// briefly: a laptop without Docker must skip at once, not wait.
func dockerAvailable() bool {
	dockerOnce.Do(func() {
		provider, err := testcontainers.NewDockerProvider()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		dockerOK = provider.Health(ctx) == nil // Health also closes the provider
	})
	return dockerOK
}

func kafkaContainer() ([]string, error) {
	kafkaOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		kafkaBrokers, kafkaErr = startKafka(ctx)
	})
	return kafkaBrokers, kafkaErr
}

func postgresContainer() (string, error) {
	postgresOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		postgresURL, postgresErr = startPostgres(ctx)
	})
	return postgresURL, postgresErr
}

const (
	kafkaClientPort = "9092/tcp"
	kafkaStarter    = "/tmp/testenv-start.sh"
)

// startKafka runs the official apache/kafka image as one KRaft node. A client must be
// told the host's side of the port mapping (the advertised listener), which Docker only
// picks after the container starts; so the container waits for a starter script that a
// post-start hook writes once the mapped port is known (the testcontainers Kafka
// module's trick, which targets Confluent's image).
func startKafka(ctx context.Context) ([]string, error) {
	ctr, err := testcontainers.Run(ctx, KafkaImage,
		testcontainers.WithExposedPorts(kafkaClientPort),
		testcontainers.WithEnv(map[string]string{
			"KAFKA_NODE_ID":       "1",
			"KAFKA_PROCESS_ROLES": "broker,controller",
			// PLAINTEXT is for the host; BROKER is the node talking to itself inside.
			"KAFKA_LISTENERS":                                "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:29092,CONTROLLER://0.0.0.0:9093",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"KAFKA_INTER_BROKER_LISTENER_NAME":               "BROKER",
			"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9093",
			"KAFKA_NUM_PARTITIONS":                           "12",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
		}),
		testcontainers.WithEntrypoint("sh"),
		testcontainers.WithCmd("-c", "while [ ! -f "+kafkaStarter+" ]; do sleep 0.1; done; exec bash "+kafkaStarter),
		testcontainers.WithLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			PostStarts: []testcontainers.ContainerHook{
				func(ctx context.Context, c testcontainers.Container) error {
					if err := wait.ForMappedPort(kafkaClientPort).WaitUntilReady(ctx, c); err != nil {
						return fmt.Errorf("wait for mapped port: %w", err)
					}
					endpoint, err := c.PortEndpoint(ctx, kafkaClientPort, "")
					if err != nil {
						return fmt.Errorf("mapped port: %w", err)
					}
					script := "#!/bin/bash\n" +
						"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://" + endpoint + ",BROKER://localhost:29092\n" +
						"exec /etc/kafka/docker/run\n"
					if err := c.CopyToContainer(ctx, []byte(script), kafkaStarter, 0o755); err != nil {
						return fmt.Errorf("copy starter script: %w", err)
					}
					return wait.ForLog("Kafka Server started").WithStartupTimeout(2*time.Minute).WaitUntilReady(ctx, c)
				},
			},
		}),
	)
	if err != nil {
		return nil, err
	}
	endpoint, err := ctr.PortEndpoint(ctx, kafkaClientPort, "")
	if err != nil {
		return nil, err
	}
	return []string{endpoint}, nil
}

func startPostgres(ctx context.Context) (string, error) {
	ctr, err := tcpostgres.Run(ctx, PostgresImage,
		tcpostgres.WithDatabase("orderflow"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies(),
	)
	if err != nil {
		return "", err
	}
	return ctr.ConnectionString(ctx, "sslmode=disable")
}
