package query

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"
)

// Scope is what an API key may do.
type Scope string

// The scopes. Write implies read.
const (
	// ScopeRead allows every GET.
	ScopeRead Scope = "read"
	// ScopeWrite allows everything, including POST /v1/orders/{id}/commands.
	ScopeWrite Scope = "write"
)

// allows reports whether a key of scope s may do what need requires.
func (s Scope) allows(need Scope) bool { return s == ScopeWrite || s == need }

// MinKeyChars is the shortest key accepted: a key is a password that cannot
// be rate-limited per user, so it must be long enough not to be guessed.
const MinKeyChars = 16

// Environment variables read by KeysFromEnv.
const (
	// EnvAPIKeys holds keys inline: "key1:write,key2:read".
	EnvAPIKeys = "ORDERFLOW_API_KEYS" //nolint:gosec // G101: the name of a variable, not a credential
	// EnvAPIKeysFile names a file with one "key scope" per line; # starts a
	// comment. A file keeps keys out of the process environment and
	// listings of it.
	EnvAPIKeysFile = "ORDERFLOW_API_KEYS_FILE" //nolint:gosec // G101: the name of a variable, not a credential
)

// Key is one API key. Its String and LogValue never show the secret, so a
// Key can be logged or printed by accident without leaking.
type Key struct {
	Secret string
	Scope  Scope
}

func (k Key) String() string { return "api key (" + string(k.Scope) + ")" }

// GoString keeps %#v from printing the secret.
func (k Key) GoString() string { return k.String() }

// LogValue keeps slog from printing the secret.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// ErrInvalidKeys wraps every problem found while parsing keys.
var ErrInvalidKeys = errors.New("invalid API keys")

// ParseKeys parses the inline form "key1:write,key2:read". The scope follows
// the last colon; spaces around items are ignored.
func ParseKeys(list string) ([]Key, error) {
	var keys []Key
	for i, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		secret, scope, ok := cutLast(item, ":")
		if !ok {
			return nil, fmt.Errorf("%w: item %d of $%s has no \":scope\" (want key:read or key:write)", ErrInvalidKeys, i+1, EnvAPIKeys)
		}
		k, err := newKey(secret, scope)
		if err != nil {
			return nil, fmt.Errorf("item %d of $%s: %w", i+1, EnvAPIKeys, err)
		}
		keys = append(keys, k)
	}
	return keys, checkDuplicates(keys)
}

// ReadKeysFile reads keys from a file with one "key scope" per line. Blank
// lines and lines starting with # are skipped.
func ReadKeysFile(path string) ([]Key, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the file; reading it is the point
	if err != nil {
		return nil, fmt.Errorf("read API keys: %w", err)
	}
	defer f.Close()
	var keys []Key
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%w: %s line %d: want \"key scope\"", ErrInvalidKeys, path, line)
		}
		k, err := newKey(fields[0], fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read API keys from %s: %w", path, err)
	}
	return keys, checkDuplicates(keys)
}

// LoadKeys combines the inline list and the file; either may be empty.
func LoadKeys(list, file string) ([]Key, error) {
	keys, err := ParseKeys(list)
	if err != nil {
		return nil, err
	}
	if file != "" {
		more, err := ReadKeysFile(file)
		if err != nil {
			return nil, err
		}
		keys = append(keys, more...)
	}
	return keys, checkDuplicates(keys)
}

// KeysFromEnv is LoadKeys of $ORDERFLOW_API_KEYS and $ORDERFLOW_API_KEYS_FILE.
func KeysFromEnv() ([]Key, error) {
	return LoadKeys(os.Getenv(EnvAPIKeys), os.Getenv(EnvAPIKeysFile))
}

func newKey(secret, scope string) (Key, error) {
	s := Scope(strings.TrimSpace(scope))
	if s != ScopeRead && s != ScopeWrite {
		return Key{}, fmt.Errorf("%w: scope %q is neither read nor write", ErrInvalidKeys, scope)
	}
	if n := len([]rune(secret)); n < MinKeyChars {
		return Key{}, fmt.Errorf("%w: a key is %d characters, under the minimum of %d", ErrInvalidKeys, n, MinKeyChars)
	}
	for _, r := range secret {
		// A key travels in an HTTP header: anything else could not be sent.
		if r > unicode.MaxASCII || !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return Key{}, fmt.Errorf("%w: a key may only hold printable ASCII without spaces", ErrInvalidKeys)
		}
	}
	return Key{Secret: secret, Scope: s}, nil
}

func checkDuplicates(keys []Key) error {
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k.Secret] {
			return fmt.Errorf("%w: a key is listed twice", ErrInvalidKeys)
		}
		seen[k.Secret] = true
	}
	return nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// keyring checks presented keys. It stores SHA-256 digests, so every
// comparison is between equal-length values and takes the same time whatever
// the key; and it compares against every key without stopping early, so the
// time does not tell which key (or how many) matched.
type keyring struct {
	digests [][sha256.Size]byte
	scopes  []Scope
}

func newKeyring(keys []Key) *keyring {
	r := &keyring{}
	for _, k := range keys {
		r.digests = append(r.digests, sha256.Sum256([]byte(k.Secret)))
		r.scopes = append(r.scopes, k.Scope)
	}
	return r
}

func (r *keyring) empty() bool { return len(r.digests) == 0 }

// lookup returns the scope of the presented key, or "" when it is unknown.
func (r *keyring) lookup(presented string) Scope {
	d := sha256.Sum256([]byte(presented))
	found := -1
	for i := range r.digests {
		if subtle.ConstantTimeCompare(d[:], r.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return ""
	}
	return r.scopes[found]
}

// requireScope is the auth middleware: with no keys configured (loopback
// only, see checkListen) it lets everything through.
func (s *Server) requireScope(need Scope) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.keys.empty() {
			return
		}
		h := c.GetHeader("Authorization")
		scheme, token, ok := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		switch {
		case h == "":
			writeError(c, newError(http.StatusUnauthorized, CodeUnauthorized, "this endpoint needs an API key: send Authorization: Bearer <key>"))
			return
		case !ok || !strings.EqualFold(scheme, "Bearer") || token == "":
			writeError(c, newError(http.StatusUnauthorized, CodeUnauthorized, "the Authorization header must be \"Bearer <key>\""))
			return
		}
		scope := s.keys.lookup(token)
		switch {
		case scope == "":
			writeError(c, newError(http.StatusUnauthorized, CodeUnauthorized, "the API key is not valid"))
		case !scope.allows(need):
			writeError(c, newError(http.StatusForbidden, CodeForbidden, "the API key has scope %s; this needs %s", scope, need))
		}
	}
}

// checkListen refuses to serve without keys anywhere but loopback: an
// unauthenticated API that can publish commands must not be reachable from
// another machine by accident.
func checkListen(addr string, haveKeys bool) error {
	if haveKeys {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if IsLoopback(addr) {
		return nil
	}
	shown := host
	if shown == "" {
		shown = "all interfaces"
	}
	return fmt.Errorf("%w: no API keys are configured, so the API only listens on loopback, but the listen address %q is %s; "+
		"set $%s or $%s, or listen on 127.0.0.1", ErrNoKeys, addr, shown, EnvAPIKeys, EnvAPIKeysFile)
}

// IsLoopback reports whether a host:port listen address is reachable from
// this machine only: the only place the API serves without keys.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// ErrNoKeys is returned by New for a non-loopback listen address without API keys.
var ErrNoKeys = errors.New("refusing to serve without API keys")
