package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func init() {
	register(command{name: "config", summary: "print and check the effective configuration of serve, secrets masked", run: runConfig})
}

// effectiveSetting is one line of `orderflow config`.
type effectiveSetting struct {
	Name   string `json:"name"`
	Env    string `json:"env"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// runConfig resolves serve's settings exactly as serve would (same flags,
// same variables, same defaults), prints them with secrets masked, and
// fails when serve would refuse them: a dry run for a deployment.
func runConfig(_ context.Context, args []string, out io.Writer) error {
	var (
		c      serveConfig
		asJSON bool
	)
	f := newFlags("config")
	c.register(f)
	f.fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	f.fs.Usage = func() {
		_, _ = fmt.Fprintln(f.fs.Output(), "Usage: orderflow config [serve's flags] [-json]\n\n"+
			"Prints the configuration `orderflow serve` would run with, given the same flags and\n"+
			"environment, with passwords and API keys masked; exits 1 when serve would refuse it.")
		f.fs.PrintDefaults()
	}
	if err := f.parse(args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("%w: orderflow config takes flags only, not %q", errUsage, f.fs.Arg(0))
	}
	settings := effective(f, &c)
	verr := c.validate()
	var problems []string
	if verr != nil {
		problems = strings.Split(verr.Error(), "\n")
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Settings []effectiveSetting `json:"settings"`
			Valid    bool               `json:"valid"`
			Problems []string           `json:"problems"`
		}{settings, verr == nil, problems}); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	} else {
		t := newTable(out)
		t.row("SETTING\tVARIABLE\tVALUE\tFROM\n")
		for _, s := range settings {
			t.row("-%s\t$%s\t%s\t%s\n", s.Name, s.Env, s.Value, s.Source)
		}
		if err := t.flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if verr != nil {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// effective lists every setting of f with its value as serve would use it,
// secrets masked, and where it came from.
func effective(f envFlags, c *serveConfig) []effectiveSetting {
	out := make([]effectiveSetting, 0, len(f.st.settings))
	for _, s := range f.st.settings {
		fl := f.fs.Lookup(s.name)
		v := fl.Value.String()
		if sv, ok := fl.Value.(*secretFlag); ok {
			v = sv.masked()
		}
		e := effectiveSetting{Name: s.name, Env: s.envs[0], Value: v, Source: s.source()}
		if s.env != "" {
			e.Env = s.env
		}
		switch s.name {
		case "db-pool-size":
			// 0 is not what runs: say what does.
			e.Value = strconv.Itoa(c.poolSize())
			if c.db.poolSize < c.poolSize() {
				e.Source += fmt.Sprintf(" (%d raised to partitions + 8)", c.db.poolSize)
			}
		case "monitor":
			e.Value = fmt.Sprintf("%s (%s in role %s)", v, map[bool]string{true: "on", false: "off"}[c.monitorOn()], c.role)
		}
		if e.Value == "" {
			e.Value = `""`
		}
		out = append(out, e)
	}
	return out
}

// settingsAttrs is the effective configuration as log attributes, secrets
// masked, for serve's start-up log.
func settingsAttrs(f envFlags) []any {
	var attrs []any
	for _, s := range f.st.settings {
		fl := f.fs.Lookup(s.name)
		v := fl.Value.String()
		if sv, ok := fl.Value.(*secretFlag); ok {
			v = sv.masked()
		}
		attrs = append(attrs, slog.String(s.name, v))
	}
	return attrs
}

// mask replaces every secret.
const mask = "****"

var (
	// secretParams are the query parameters (URL form) of a PostgreSQL
	// connection string that carry secrets.
	secretParams = regexp.MustCompile(`(?i)(^|&)((?:ssl)?password|sslkey_?password)=[^&]*`)
	// secretKeywords are the same in keyword/value form, where a value may
	// be single-quoted with backslash escapes.
	secretKeywords = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)`)
	// secretKey is a secret parameter's name once decoded: a URL may spell
	// it percent-encoded, where secretParams does not see it.
	secretKey = regexp.MustCompile(`(?i)^((?:ssl)?password|sslkey_?password)$`)
)

// databaseURLHasSecret reports whether a PostgreSQL connection string
// carries a secret, by the same rules maskDatabaseURL masks with, so that
// what is refused as a flag and what is masked in output cannot disagree. A
// URL that does not parse has none that can be told; it is refused later
// as invalid.
func databaseURLHasSecret(s string) bool {
	if !strings.Contains(s, "://") {
		return secretKeywords.MatchString(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return secretParams.MatchString(u.RawQuery) || secretInQuery(u)
}

// secretInQuery reports whether a decoded query parameter name is a secret.
func secretInQuery(u *url.URL) bool {
	for k := range u.Query() {
		if secretKey.MatchString(k) {
			return true
		}
	}
	return false
}

// maskDatabaseURL masks the passwords of a PostgreSQL connection string, URL
// or keyword/value form, keeping host, user, database and options visible:
// those are what an operator checks. A URL that does not parse is masked
// whole, since where its password is cannot be told.
func maskDatabaseURL(s string) string {
	if !strings.Contains(s, "://") {
		return secretKeywords.ReplaceAllString(s, "${1}="+mask)
	}
	u, err := url.Parse(s)
	if err != nil {
		return mask
	}
	// A placeholder, swapped for the mask after encoding, which would
	// otherwise turn "*" into "%2A".
	const placeholder = "orderflowmaskedpassword"
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), placeholder)
		}
	}
	u.RawQuery = secretParams.ReplaceAllString(u.RawQuery, "${1}${2}="+mask)
	for k, vs := range u.Query() {
		if secretKey.MatchString(k) && slices.ContainsFunc(vs, func(v string) bool { return v != mask }) {
			return mask // a secret under an encoded name, which the pattern does not see
		}
	}
	// Fragments have no meaning here; drop whatever is there rather than
	// risk showing it.
	u.Fragment, u.RawFragment = "", ""
	return strings.Replace(u.String(), ":"+placeholder+"@", ":"+mask+"@", 1)
}
