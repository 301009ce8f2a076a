package processor_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/scripts/testenv"
)

// Readiness is served without auth, so a dependency that does not answer is
// named and nothing more: the driver's error would show host, port and
// user.
func TestReadyNamesOnlyTheDependency(t *testing.T) {
	t.Parallel()
	addr := testenv.FreeAddr(t) // nothing answers there
	pool, err := pgxpool.New(context.Background(), "postgres://secretuser@"+addr+"/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p, err := processor.New(processor.Config{Logger: testLogger()}, pool)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Ready(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "postgresql:") ||
		strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "secretuser") {
		t.Fatalf("Ready: %v; want the dependency named, without address or user", err)
	}
}
