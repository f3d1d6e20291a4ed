package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
)

// Configuration: every flag can also come from the environment variable
// IPFS_SYNC_<FLAG> (upper case, '-' → '_') and from the repository's
// config.json. A flag on the command line wins over the environment, which
// wins over the file, which wins over the default. See docs/cron-and-ci.md.

// configFile is the name of the optional config file in the repository.
const configFile = "config.json"

// envVar is the environment variable for the flag called name.
func envVar(name string) string {
	return "IPFS_SYNC_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// configure gives every flag of app and its commands its environment
// variable, and makes every command check the environment and read the
// config file before it runs.
func configure(app *ucli.App) {
	addEnvVars(app.Flags)
	for _, cmd := range app.Commands {
		addEnvVars(cmd.Flags)
		cmd := cmd
		before := cmd.Before
		cmd.Before = func(c *ucli.Context) error {
			if err := checkEnv(app); err != nil {
				return err
			}
			if err := applyConfig(c, app, cmd); err != nil {
				return err
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
}

func addEnvVars(flags []ucli.Flag) {
	for _, f := range flags {
		names := f.Names()
		if len(names) == 0 || names[0] == "help" {
			continue
		}
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			continue
		}
		ev := v.Elem().FieldByName("EnvVars")
		if !ev.IsValid() || !ev.CanSet() || ev.Type() != reflect.TypeOf([]string(nil)) {
			continue
		}
		env := envVar(names[0])
		have := ev.Interface().([]string)
		if !slices.Contains(have, env) {
			ev.Set(reflect.ValueOf(append(slices.Clone(have), env)))
		}
	}
}

// checkEnv parses the environment variable of every flag of every command,
// so that a bad value is a usage error whatever the command: urfave/cli
// reads only the variables of the running command's own flags, and a
// cron job's IPFS_SYNC_HIDDEN=maybe would go unnoticed by all but sync.
// Variables that are no flag's are left alone.
func checkEnv(app *ucli.App) error {
	flags := slices.Clone(app.Flags)
	for _, cmd := range app.Commands {
		flags = append(flags, cmd.Flags...)
	}
	for _, f := range flags {
		ev, ok := f.(interface{ GetEnvVars() []string })
		if !ok {
			continue
		}
		for _, name := range ev.GetEnvVars() {
			v, set := os.LookupEnv(name)
			if !set || v == "" { // urfave/cli takes an empty variable as unset
				continue
			}
			var err error
			switch f.(type) {
			case *ucli.BoolFlag:
				_, err = strconv.ParseBool(v)
			case *ucli.IntFlag:
				_, err = strconv.ParseInt(v, 0, 64)
			case *ucli.DurationFlag:
				_, err = time.ParseDuration(v)
			}
			if err != nil {
				return usageError{fmt.Errorf("environment variable %s=%q is not a value for --%s: %w", name, v, f.Names()[0], err)}
			}
		}
	}
	return nil
}

// config is a parsed config.json: flag names to values, for every command,
// and under a command's name, for that command only (winning over the
// former). Values are JSON strings, numbers or booleans, or arrays of them
// for flags that may be repeated.
//
//	{"workers": 4, "api": "http://127.0.0.1:5001", "sync": {"name": "debian", "exclude": ["*.tmp"]}}
type config struct {
	path     string
	all      map[string]json.RawMessage
	commands map[string]map[string]json.RawMessage
}

// loadConfig reads dir/config.json; a missing file is no configuration.
func loadConfig(dir string, app *ucli.App) (*config, error) {
	path := filepath.Join(dir, configFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cfg := &config{path: path, all: map[string]json.RawMessage{}, commands: map[string]map[string]json.RawMessage{}}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, cfg.errorf("not a JSON object: %v", err)
	}
	for key, raw := range top {
		if cmd := app.Command(key); cmd != nil && cmd.Name == key {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, cfg.errorf("%s: want an object of %s's flags: %v", key, key, err)
			}
			for k := range m {
				if findFlag(cmd.Flags, k) == nil && findFlag(app.Flags, k) == nil {
					return nil, cfg.errorf("%s: %q is not a flag of %s", key, k, key)
				}
				if k == "repo" {
					return nil, errRepoInConfig(cfg)
				}
			}
			cfg.commands[key] = m
			continue
		}
		known := findFlag(app.Flags, key) != nil
		for _, cmd := range app.Commands {
			known = known || findFlag(cmd.Flags, key) != nil
		}
		if !known {
			return nil, cfg.errorf("%q is neither a flag nor a command", key)
		}
		cfg.all[key] = raw
	}
	if _, ok := cfg.all["repo"]; ok {
		return nil, errRepoInConfig(cfg)
	}
	return cfg, nil
}

func errRepoInConfig(cfg *config) error {
	return cfg.errorf(`"repo" cannot be set in the repository's own config (use --repo or IPFS_SYNC_REPO)`)
}

func (cfg *config) errorf(format string, a ...any) error {
	return usageError{fmt.Errorf("%s: "+format, append([]any{cfg.path}, a...)...)}
}

// applyConfig sets each flag of cmd (and each global flag) that neither the
// command line nor the environment set, from the config file.
func applyConfig(c *ucli.Context, app *ucli.App, cmd *ucli.Command) error {
	dir, err := repoDir(c)
	if err != nil {
		return nil // no repository to read a config from; the command says why
	}
	cfg, err := loadConfig(dir, app)
	if err != nil || cfg == nil {
		return err
	}
	// The command's own section first: once a flag is set, a later value
	// for it is skipped.
	for _, values := range []map[string]json.RawMessage{cfg.commands[cmd.Name], cfg.all} {
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, key := range keys {
			f := findFlag(cmd.Flags, key)
			if f == nil {
				f = findFlag(app.Flags, key)
			}
			if f == nil {
				continue // another command's flag
			}
			name := f.Names()[0]
			if c.IsSet(name) {
				continue
			}
			vals, err := configValues(values[key], isSlice(f))
			if err != nil && name == pinningTokenFlag {
				err = errors.New("want a string") // the error would quote the secret
			}
			if err != nil {
				return cfg.errorf("%s: %v", key, err)
			}
			for _, v := range vals {
				if err := c.Set(name, v); err != nil {
					return cfg.errorf("%s: %v", key, err)
				}
			}
			if name == pinningTokenFlag && c.App.Metadata != nil {
				c.App.Metadata[pinningTokenFlag] = true // see pinningToken
			}
		}
	}
	return nil
}

// configValues turns a JSON value into flag values: one for a string,
// number or boolean, one per element of an array (repeatable flags only).
func configValues(raw json.RawMessage, slice bool) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	scalar := func(v any) (string, error) {
		switch v := v.(type) {
		case string:
			return v, nil
		case json.Number:
			return v.String(), nil
		case bool:
			return fmt.Sprint(v), nil
		}
		return "", fmt.Errorf("want a string, number or boolean, got %s", raw)
	}
	if list, ok := v.([]any); ok {
		if !slice {
			return nil, errors.New("takes one value, not a list")
		}
		out := make([]string, len(list))
		for i, e := range list {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func findFlag(flags []ucli.Flag, name string) ucli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

func isSlice(f ucli.Flag) bool {
	s, ok := f.(interface{ IsSliceFlag() bool })
	return ok && s.IsSliceFlag()
}
