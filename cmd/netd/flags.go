package main

import "strings"

// parseKV parses repeated key=value flag values. A value without "=" maps
// the key to "" (docker's MapOpts); an empty key is an error.
func parseKV(flag string, vals []string) (map[string]string, error) {
	return kvMap(vals, func(v string) error {
		return badFlagValue("invalid argument %q for \"--%s\" flag: empty name", v, flag)
	})
}

// parseLabels is docker's label parsing: "k=v" or "k", name not empty.
func parseLabels(vals []string) (map[string]string, error) {
	return kvMap(vals, func(v string) error {
		return badFlagValue("invalid argument %q for \"--label\" flag: invalid label '%s': empty name", v, v)
	})
}

// kvMap splits vals at their first "=", failing with emptyKey(v) for a
// value whose key is blank.
func kvMap(vals []string, emptyKey func(v string) error) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(vals))
	for _, v := range vals {
		k, val, _ := strings.Cut(v, "=")
		if strings.TrimSpace(k) == "" {
			return nil, emptyKey(v)
		}
		m[k] = val
	}
	return m, nil
}

// parseFilters turns repeated --filter key=value into the API's map.
func parseFilters(vals []string) (map[string][]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	f := make(map[string][]string)
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return nil, badFlagValue("invalid argument %q for \"-f, --filter\" flag: bad format of filter (expected name=value)", v)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		f[k] = append(f[k], strings.TrimSpace(val))
	}
	return f, nil
}
