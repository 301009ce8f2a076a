package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// OrderflowBinary builds cmd/orderflow once per test binary and returns its
// path, for tests about real processes: crashes, scale-out, what a process
// prints. The build directory is the module's, found with `go env GOMOD`, so
// it works from any package.
func OrderflowBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		mod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			binErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "orderflow-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "orderflow")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/orderflow")
		build.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatalf("build orderflow: %v", binErr)
	}
	return binPath
}
