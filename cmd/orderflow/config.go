package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// envFlags registers flags whose defaults come from environment variables, so
// every setting can be given either way and the flag's help names the
// variable. Flags win over the environment.
type envFlags struct {
	fs *flag.FlagSet
}

func newFlags(name string) envFlags {
	fs := flag.NewFlagSet("orderflow "+name, flag.ContinueOnError)
	return envFlags{fs: fs}
}

func (f envFlags) String(p *string, name, env, def, help string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	f.fs.StringVar(p, name, def, help+" ($"+env+")")
}

// Secret is String for values that must never be printed: its default is not
// shown in -h.
func (f envFlags) Secret(p *string, name, env, help string) {
	*p = os.Getenv(env)
	f.fs.Var((*secretValue)(p), name, help+" ($"+env+")")
}

func (f envFlags) Int(p *int, name, env string, def int, help string) {
	f.fs.IntVar(p, name, def, help+" ($"+env+")")
	if v, ok := os.LookupEnv(env); ok {
		f.envErr(name, env, f.fs.Set(name, v))
	}
}

func (f envFlags) Duration(p *time.Duration, name, env string, def time.Duration, help string) {
	f.fs.DurationVar(p, name, def, help+" ($"+env+")")
	if v, ok := os.LookupEnv(env); ok {
		f.envErr(name, env, f.fs.Set(name, v))
	}
}

func (f envFlags) Bool(p *bool, name, env string, def bool, help string) {
	f.fs.BoolVar(p, name, def, help+" ($"+env+")")
	if v, ok := os.LookupEnv(env); ok {
		f.envErr(name, env, f.fs.Set(name, v))
	}
}

// envErr records a malformed environment value; parse reports it, naming the
// variable, instead of silently using the default.
func (f envFlags) envErr(name, env string, err error) {
	if err != nil {
		badEnv = append(badEnv, fmt.Sprintf("$%s (for -%s): %v", env, name, err))
	}
}

var badEnv []string

// parse parses args and reports malformed environment values and stray
// positional arguments as usage errors.
func (f envFlags) parse(args []string) error {
	if len(badEnv) > 0 {
		err := fmt.Errorf("%w: %s", errUsage, strings.Join(badEnv, "; "))
		badEnv = nil
		return err
	}
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	return nil
}

type secretValue string

func (s *secretValue) String() string {
	if s == nil || *s == "" {
		return ""
	}
	return "****"
}
func (s *secretValue) Set(v string) error { *s = secretValue(v); return nil }

// splitList splits a comma-separated setting, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var _ = strconv.Itoa
