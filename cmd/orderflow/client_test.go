package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIKeySources: the key comes from $ORDERFLOW_API_KEY or a key file; a
// key file given on the command line wins over the variable, and the two
// variables together are refused rather than one silently preferred.
func TestAPIKeySources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("  from-the-file-0123456789 \nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clientKey := func(args ...string) (string, error) {
		t.Helper()
		var a apiFlags
		f := newFlags("get")
		a.register(f)
		if err := f.parse(args); err != nil {
			t.Fatal(err)
		}
		c, err := a.client()
		if err != nil {
			return "", err
		}
		return c.key, nil
	}

	t.Setenv("ORDERFLOW_API_KEY", "from-the-env-0123456789")
	if key, err := clientKey(); err != nil || key != "from-the-env-0123456789" {
		t.Fatalf("env key: %q, %v", key, err)
	}
	if key, err := clientKey("-api-key-file", file); err != nil || key != "from-the-file-0123456789" {
		t.Fatalf("env key and -api-key-file: %q, %v; want the file's first line", key, err)
	}
	t.Setenv("ORDERFLOW_API_KEY_FILE", file)
	_, err := clientKey()
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("both variables: %v; want a usage error", err)
	}
	t.Setenv("ORDERFLOW_API_KEY", "")
	if key, err := clientKey(); err != nil || key != "from-the-file-0123456789" {
		t.Fatalf("file variable alone: %q, %v", key, err)
	}
}
