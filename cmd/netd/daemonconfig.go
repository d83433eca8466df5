//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// configFlag names the flag of the daemon's configuration file; the file
// cannot name it itself.
const configFlag = "config"

// applyConfigFile sets every flag of c's command that the JSON object in
// c's --config file names (keys are the flags' names) and that neither the
// command line nor an environment variable set: those override the file.
func applyConfigFile(c *cli.Context) error {
	path := c.String(configFlag)
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	keys, err := decodeConfig(raw)
	if err != nil {
		return fmt.Errorf("unable to configure the netd daemon with file %s: %w", path, err)
	}
	flags := map[string]cli.Flag{}
	for _, f := range c.Command.Flags {
		if n := f.Names()[0]; n != configFlag && n != "help" {
			flags[n] = f
		}
	}
	var unknown []string
	for k := range keys {
		if flags[k] == nil {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unable to configure the netd daemon with file %s: the following directives don't match any configuration option: %s",
			path, strings.Join(unknown, ", "))
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if c.IsSet(k) {
			continue
		}
		values, err := configValues(flags[k], keys[k])
		if err != nil {
			return fmt.Errorf("unable to configure the netd daemon with file %s: %q %w", path, k, err)
		}
		for _, v := range values {
			if err := c.Set(k, v); err != nil {
				return fmt.Errorf("unable to configure the netd daemon with file %s: %q: %w", path, k, err)
			}
		}
	}
	return nil
}

// decodeConfig parses one JSON object, keeping each value raw.
func decodeConfig(raw []byte) (map[string]json.RawMessage, error) {
	var keys map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&keys); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	if keys == nil {
		return nil, fmt.Errorf("decode JSON: want an object of flag names and values")
	}
	if dec.More() {
		return nil, fmt.Errorf("decode JSON: data after the object")
	}
	return keys, nil
}

// configValues turns a file value into the strings c.Set takes for f: one,
// or one per element of a list.
func configValues(f cli.Flag, v json.RawMessage) ([]string, error) {
	kind := jsonKind(v)
	switch f.(type) {
	case *cli.StringFlag:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("must be a string, not %s", kind)
		}
		return []string{s}, nil
	case *cli.BoolFlag:
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, fmt.Errorf("must be true or false, not %s", kind)
		}
		return []string{fmt.Sprint(b)}, nil
	case *cli.IntFlag:
		var n int
		if err := json.Unmarshal(v, &n); err != nil {
			return nil, fmt.Errorf("must be an integer, not %s", kind)
		}
		return []string{fmt.Sprint(n)}, nil
	case *cli.StringSliceFlag:
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil, fmt.Errorf("must be a list of strings or a string, not %s", kind)
			}
			list = []string{s}
		}
		return list, nil
	}
	return nil, fmt.Errorf("cannot be set in a config file (flag type %T)", f)
}

// jsonKind names the JSON type of v for error messages.
func jsonKind(v json.RawMessage) string {
	t := bytes.TrimSpace(v)
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if bytes.ContainsAny(t, ".eE") {
		return "a number with a fraction or exponent (" + string(t) + ")"
	}
	return "a number"
}
