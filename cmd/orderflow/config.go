package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// envFlags registers flags whose defaults come from environment variables, so
// every setting can be given either way and the flag's help names the
// variable. Flags win over the environment, the environment over defaults.
// It remembers where each value came from, for `orderflow config`.
type envFlags struct {
	fs *flag.FlagSet
	st *flagState
}

// flagState is what an envFlags learns while registering and parsing.
type flagState struct {
	settings []*setting
	byName   map[string]*setting
	// badEnv collects malformed or conflicting environment values; parse
	// reports them, naming the variable, instead of silently using the
	// default.
	badEnv []string
	// secrets are the Secret flags, checked after parsing.
	secrets []*secretFlag
}

// setting is one flag that an environment variable can also set.
type setting struct {
	name string   // the flag, without dashes
	envs []string // the variables that set it, the documented one first
	env  string   // the variable the value came from; "" if none
	flag bool     // set on the command line (known after parse)
}

// source says where the setting's value came from: "flag", "$VAR" or
// "default".
func (s *setting) source() string {
	switch {
	case s.flag:
		return "flag"
	case s.env != "":
		return "$" + s.env
	default:
		return "default"
	}
}

// envAliases are further variables accepted for a setting. KAFKA_BROKERS and
// DATABASE_URL are what scripts/stack.sh, Compose and most tools export;
// the ORDERFLOW_ names let a deployment keep every setting under one prefix.
var envAliases = map[string][]string{
	"KAFKA_BROKERS": {"ORDERFLOW_KAFKA_BROKERS"},
	"DATABASE_URL":  {"ORDERFLOW_DATABASE_URL"},
}

func newFlags(name string) envFlags {
	fs := flag.NewFlagSet("orderflow "+name, flag.ContinueOnError)
	return envFlags{fs: fs, st: &flagState{byName: map[string]*setting{}}}
}

// lookup finds the environment value of a setting and records the setting.
// Two variables of one setting that disagree are an error: silently
// preferring one would run against a database or cluster nobody meant.
func (f envFlags) lookup(name, env string) (string, bool) {
	s := &setting{name: name, envs: append([]string{env}, envAliases[env]...)}
	f.st.settings = append(f.st.settings, s)
	f.st.byName[name] = s
	var val string
	for _, e := range s.envs {
		v, ok := os.LookupEnv(e)
		if !ok {
			continue
		}
		if s.env != "" && v != val {
			f.st.badEnv = append(f.st.badEnv, fmt.Sprintf("$%s and $%s (both for -%s) differ: set only one", s.env, e, name))
			continue
		}
		s.env, val = e, v
	}
	return val, s.env != ""
}

// envHelp is the help text's suffix naming the variables.
func envHelp(env string) string {
	names := append([]string{env}, envAliases[env]...)
	for i := range names {
		names[i] = "$" + names[i]
	}
	return " (" + strings.Join(names, " or ") + ")"
}

// String registers a string setting.
func (f envFlags) String(p *string, name, env, def, help string) {
	if v, ok := f.lookup(name, env); ok {
		def = v
	}
	f.fs.StringVar(p, name, def, help+envHelp(env))
}

// Secret is String for values that must never be printed: its default is not
// shown in -h, and `orderflow config` masks it.
//
// A secret given as a flag would be visible to every user of the machine in
// ps, so the flag refuses it: the value must come from the environment (or,
// for API keys, a file). A database URL without a password is no secret and
// is accepted as a flag.
func (f envFlags) Secret(p *string, name, env, help string) {
	*p, _ = f.lookup(name, env)
	sf := &secretFlag{p: p, name: name, env: env, urlOK: env == "DATABASE_URL"}
	f.st.secrets = append(f.st.secrets, sf)
	f.fs.Var(sf, name, help+envHelp(env)+"; never as a flag with a secret in it")
}

// secretFlag is the flag.Value of a Secret setting.
type secretFlag struct {
	p       *string
	name    string
	env     string
	urlOK   bool // a URL without a password may be given
	refused bool // given as a flag with a secret: parse reports it
}

// String is what -h shows: whether the setting is set, never its value.
func (s *secretFlag) String() string {
	if s == nil || s.p == nil || *s.p == "" {
		return ""
	}
	return mask
}

// masked shows what can be shown of the value: of a database URL everything
// but its passwords, of anything else only whether it is set.
func (s *secretFlag) masked() string {
	if s.urlOK && *s.p != "" {
		return maskDatabaseURL(*s.p)
	}
	return s.String()
}

// Set implements flag.Value.
// It never fails: the flag package would quote the value in its error,
// secret and all; parse reports the refusal instead.
func (s *secretFlag) Set(v string) error {
	if !s.urlOK || databaseURLHasSecret(v) {
		s.refused = true
		return nil
	}
	*s.p = v
	return nil
}

// Int registers an integer setting.
func (f envFlags) Int(p *int, name, env string, def int, help string) {
	f.fs.IntVar(p, name, def, help+envHelp(env))
	f.fromEnv(name, env)
}

// Duration registers a duration setting (Go syntax: 500ms, 10s, 1h).
func (f envFlags) Duration(p *time.Duration, name, env string, def time.Duration, help string) {
	f.fs.DurationVar(p, name, def, help+envHelp(env))
	f.fromEnv(name, env)
}

// Bool registers a boolean setting.
func (f envFlags) Bool(p *bool, name, env string, def bool, help string) {
	f.fs.BoolVar(p, name, def, help+envHelp(env))
	f.fromEnv(name, env)
}

// fromEnv sets a registered flag from its variable through the flag's own
// parser, so a malformed value is reported rather than ignored. It sets the
// Value directly, not through FlagSet.Set, which would count it as given on
// the command line.
func (f envFlags) fromEnv(name, env string) {
	v, ok := f.lookup(name, env)
	if !ok {
		return
	}
	if err := f.fs.Lookup(name).Value.Set(v); err != nil {
		f.st.badEnv = append(f.st.badEnv, fmt.Sprintf("$%s (for -%s): %q is not valid: %v", f.st.byName[name].env, name, v, err))
	}
}

// parse parses args and reports malformed environment values as usage
// errors. Afterwards each setting knows where its value came from.
func (f envFlags) parse(args []string) error {
	if len(f.st.badEnv) > 0 {
		return fmt.Errorf("%w: %s", errUsage, strings.Join(f.st.badEnv, "; "))
	}
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if err := f.checkSecrets(); err != nil {
		return err
	}
	f.fs.Visit(func(fl *flag.Flag) {
		if s := f.st.byName[fl.Name]; s != nil {
			s.flag = true
		}
	})
	return nil
}

// given says whether the setting was given on the command line; only
// known after parse.
func (f envFlags) given(name string) bool {
	s := f.st.byName[name]
	return s != nil && s.flag
}

// checkSecrets reports a secret that was given as a flag.
func (f envFlags) checkSecrets() error {
	for _, sf := range f.st.secrets {
		if sf.refused {
			return fmt.Errorf("%w: -%s: a secret on the command line shows in ps to every user; set $%s instead", errUsage, sf.name, sf.env)
		}
	}
	return nil
}

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
