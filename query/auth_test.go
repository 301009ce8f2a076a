package query

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	readKey  = "read-key-0123456789abcdef"
	writeKey = "write-key-0123456789abcdef"
)

func TestParseKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []Key
		err  string
	}{
		{"", nil, ""},
		{" " + writeKey + ":write , " + readKey + ":read ,", []Key{{writeKey, ScopeWrite}, {readKey, ScopeRead}}, ""},
		{"with:colon:in-it-0123456789:read", []Key{{"with:colon:in-it-0123456789", ScopeRead}}, ""},
		{readKey, nil, "no \":scope\""},
		{readKey + ":admin", nil, "neither read nor write"},
		{"short:read", nil, "under the minimum"},
		{"has space 0123456789abc:read", nil, "printable ASCII"},
		{readKey + ":read," + readKey + ":write", nil, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKeys(tt.in)
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrInvalidKeys) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseKeys error %v, want ErrInvalidKeys containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), readKey) {
					t.Fatalf("error leaks the key: %v", err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
				t.Fatalf("ParseKeys = %v, %v; want %v", got, err, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("key %d = %+v", i, got[i].Scope)
				}
			}
		})
	}
}

func TestReadKeysFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "keys")
	if err := os.WriteFile(good, []byte("# ops keys\n\n"+writeKey+" write\n  "+readKey+"\tread  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys("inline-key-0123456789:read", good)
	if err != nil || len(keys) != 3 || keys[1].Secret != writeKey || keys[2].Scope != ScopeRead {
		t.Fatalf("LoadKeys = %v, %v", keys, err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte(writeKey+" write extra\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeysFile(bad); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("ReadKeysFile(bad) = %v, want a line 1 error", err)
	}
	if _, err := ReadKeysFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("ReadKeysFile of a missing file succeeded")
	}
	if _, err := LoadKeys(writeKey+":read", good); err == nil {
		t.Fatal("LoadKeys accepted a key given inline and in the file")
	}
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	t.Parallel()
	k := Key{Secret: writeKey, Scope: ScopeWrite}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), fmt.Sprint([]Key{k})} {
		if strings.Contains(s, writeKey) {
			t.Fatalf("formatted key shows the secret: %s", s)
		}
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:0": true, "[::1]:8080": true, "127.0.0.2:1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.1.2.3:8080": false, "example.com:80": false,
	} {
		err := checkListen(addr, false)
		if ok != (err == nil) {
			t.Errorf("checkListen(%q, no keys) = %v", addr, err)
		}
		if err != nil && (!errors.Is(err, ErrNoKeys) || !strings.Contains(err.Error(), EnvAPIKeys)) {
			t.Errorf("checkListen(%q) error %q does not say how to fix it", addr, err)
		}
		if err := checkListen(addr, true); err != nil {
			t.Errorf("checkListen(%q, keys) = %v", addr, err)
		}
	}
	if _, err := newServer(Config{Addr: ":8080"}, nil, nil); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("newServer on all interfaces without keys = %v, want ErrNoKeys", err)
	}
	if _, err := newServer(Config{Addr: ":8080", APIKeys: []Key{{readKey, ScopeRead}}}, nil, nil); err != nil {
		t.Fatalf("newServer on all interfaces with keys = %v", err)
	}
	if _, err := newServer(Config{APIKeys: []Key{{"short", ScopeRead}}}, nil, nil); err == nil {
		t.Fatal("newServer accepted a short key")
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{APIKeys: []Key{{readKey, ScopeRead}, {writeKey, ScopeWrite}}})
	tests := []struct {
		name, method, path, auth string
		status                   int
		code                     string
	}{
		{"no key", "GET", "/v1/machine", "", 401, CodeUnauthorized},
		{"unknown key", "GET", "/v1/machine", "Bearer not-a-key-0123456789abcdef", 401, CodeUnauthorized},
		{"prefix of a key", "GET", "/v1/machine", "Bearer " + readKey[:20], 401, CodeUnauthorized},
		{"basic scheme", "GET", "/v1/machine", "Basic " + readKey, 401, CodeUnauthorized},
		{"bearer without key", "GET", "/v1/machine", "Bearer ", 401, CodeUnauthorized},
		{"read key reads", "GET", "/v1/machine", "Bearer " + readKey, 200, ""},
		{"scheme is case-insensitive", "GET", "/v1/machine", "bearer " + readKey, 200, ""},
		{"write key reads", "GET", "/v1/machine", "Bearer " + writeKey, 200, ""},
		{"read key on a write", "POST", "/v1/orders/o-1/commands", "Bearer " + readKey, 403, CodeForbidden},
		{"no key on a write", "POST", "/v1/orders/o-1/commands", "", 401, CodeUnauthorized},
		// Reaches validation (an empty body), so the write key passed auth.
		{"write key on a write", "POST", "/v1/orders/o-1/commands", "Bearer " + writeKey, 400, CodeInvalidJSON},
		{"metrics need a key", "GET", "/metrics", "", 401, CodeUnauthorized},
		{"metrics with a read key", "GET", "/metrics", "Bearer " + readKey, 200, ""},
		{"healthz is open", "GET", "/healthz", "", 200, ""},
		{"openapi is open", "GET", "/openapi.json", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tt.auth != "" {
				h.Set("Authorization", tt.auth)
			}
			res := serve(t, s, tt.method, tt.path, h, "")
			res.expect(t, tt.status, tt.code)
			if tt.status == 401 && res.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}
