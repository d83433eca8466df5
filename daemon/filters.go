package daemon

import (
	"encoding/json"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netd-dev/netd/api"
)

// Filters is Docker's filter set: key -> values. Values of one key are ORed
// (label: ANDed, as Docker), different keys are ANDed.
type Filters map[string][]string

// Filter keys of `network ls` and `network prune`, as Docker's.
var (
	networkListFilters  = []string{"dangling", "driver", "id", "label", "name", "scope", "type"}
	networkPruneFilters = []string{"label", "label!", "until"}
)

// ParseFilters decodes the ?filters= query value: Docker's current
// map[string][]string or its map[string]map[string]bool form. Values are
// de-duplicated and sorted; "" gives an empty set.
func ParseFilters(raw string) (Filters, error) {
	f := Filters{}
	if raw == "" {
		return f, nil
	}
	var lists map[string][]string
	if err := json.Unmarshal([]byte(raw), &lists); err == nil {
		for k, vs := range lists {
			f[k] = dedupe(vs)
		}
		return f, nil
	}
	var sets map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &sets); err != nil {
		return nil, errInvalid("invalid filter")
	}
	for k, set := range sets {
		var vs []string
		for v, on := range set {
			if on {
				vs = append(vs, v)
			}
		}
		f[k] = dedupe(vs)
	}
	return f, nil
}

func dedupe(vs []string) []string {
	out := slices.Clone(vs)
	slices.Sort(out)
	return slices.Compact(out)
}

// Validate rejects keys not in allowed with Docker's "invalid filter 'foo'".
func (f Filters) Validate(allowed ...string) error {
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if !slices.Contains(allowed, k) {
			return errInvalid("invalid filter '%s'", k)
		}
	}
	return nil
}

// NetworkFacts is what MatchNetwork needs beyond the network itself.
type NetworkFacts struct {
	Network  api.Network
	Builtin  bool // bridge, host, none
	Dangling bool // no container attached
}

// MatchNetwork applies `network ls` filters. Keys: driver and scope (exact),
// id and name (exact or unanchored regular expression, as Docker: so any
// prefix or substring matches), label (key or key=value, all must match),
// type (custom|builtin), dangling (true|false; built-ins never dangle).
func MatchNetwork(f Filters, nf NetworkFacts) (bool, error) {
	if err := f.Validate(networkListFilters...); err != nil {
		return false, err
	}
	danglingOnly, hasDangling, err := danglingFilter(f)
	if err != nil {
		return false, err
	}
	for _, t := range f["type"] {
		if t != "builtin" && t != "custom" {
			return false, errInvalid("invalid filter: 'type'='%s'", t)
		}
	}
	n := nf.Network
	if vs, ok := f["driver"]; ok && !slices.Contains(vs, n.Driver) {
		return false, nil
	}
	if vs, ok := f["scope"]; ok && !slices.Contains(vs, n.Scope) {
		return false, nil
	}
	if vs, ok := f["name"]; ok && !matchAny(vs, n.Name) {
		return false, nil
	}
	if vs, ok := f["id"]; ok && !matchAny(vs, n.ID) {
		return false, nil
	}
	if vs, ok := f["label"]; ok && !matchLabels(vs, n.Labels) {
		return false, nil
	}
	if vs, ok := f["type"]; ok {
		want := "custom"
		if nf.Builtin {
			want = "builtin"
		}
		if !slices.Contains(vs, want) {
			return false, nil
		}
	}
	if hasDangling {
		dangling := !nf.Builtin && nf.Dangling
		if dangling != danglingOnly {
			return false, nil
		}
	}
	return true, nil
}

func danglingFilter(f Filters) (value, present bool, err error) {
	vs, ok := f["dangling"]
	if !ok || len(vs) == 0 {
		return false, false, nil
	}
	if len(vs) > 1 {
		return false, false, errInvalid(`got more than one value for filter key "dangling"`)
	}
	switch vs[0] {
	case "0", "false":
		return false, true, nil
	case "1", "true":
		return true, true, nil
	}
	return false, false, errInvalid(`invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`)
}

// matchAny is Docker's Args.Match: exact value, else unanchored regexp;
// a value that is no valid regexp matches only exactly.
func matchAny(values []string, s string) bool {
	for _, v := range values {
		if v == s {
			return true
		}
		if re, err := regexp.Compile(v); err == nil && re.MatchString(s) {
			return true
		}
	}
	return false
}

// matchLabels is Docker's MatchKVList: every "key" or "key=value" must be
// present on the object.
func matchLabels(values []string, labels map[string]string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != want) {
			return false
		}
	}
	return true
}

// MatchPrune applies `network prune` filters: until=<time> keeps networks
// created after it; label=... must all match; label!=... must not all match.
// The caller still skips built-in networks and networks in use.
func MatchPrune(f Filters, n api.Network, now time.Time) (bool, error) {
	if err := f.Validate(networkPruneFilters...); err != nil {
		return false, err
	}
	if vs := f["until"]; len(vs) > 0 {
		if len(vs) > 1 {
			return false, errInvalid("more than one until filter specified")
		}
		until, err := parseUntil(vs[0], now)
		if err != nil {
			return false, err
		}
		if n.Created.After(until) {
			return false, nil
		}
	}
	if !matchLabels(f["label"], n.Labels) {
		return false, nil
	}
	if vs, ok := f["label!"]; ok && len(vs) > 0 && matchLabels(vs, n.Labels) {
		return false, nil
	}
	return true, nil
}

// parseUntil reads a Docker timestamp: a Go duration before now, an RFC 3339
// date or time (local time when no zone is given), or Unix seconds[.nanos].
func parseUntil(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && v != "0" {
		return now.Add(-d), nil
	}
	hasZone := strings.ContainsAny(v, "zZ+") || strings.Count(v, "-") == 3
	var layout string
	switch {
	case strings.Contains(v, "."):
		layout = "2006-01-02T15:04:05.999999999"
	case strings.Contains(v, "T"):
		colons := strings.Count(v, ":")
		if hasZone && !strings.ContainsAny(v, "zZ") && colons > 0 {
			colons-- // the one in a "+hh:mm" / "-hh:mm" zone offset
		}
		layout = [...]string{"2006-01-02T15", "2006-01-02T15:04", "2006-01-02T15:04:05"}[min(colons, 2)]
	default:
		layout = "2006-01-02"
	}
	var t time.Time
	var err error
	if hasZone {
		t, err = time.Parse(layout+"Z07:00", v)
	} else {
		t, err = time.ParseInLocation(layout, v, now.Location())
	}
	if err == nil {
		return t, nil
	}
	if strings.Contains(v, "-") {
		return time.Time{}, errInvalid("%v", err)
	}
	if t, ok := parseUnix(v); ok {
		return t, nil
	}
	return time.Time{}, errInvalid("failed to parse value as time or duration: %q", v)
}

// parseUnix reads "seconds" or "seconds.fraction".
func parseUnix(v string) (time.Time, bool) {
	s, frac, hasFrac := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nsec int64
	if hasFrac {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseUint(frac, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		nsec = int64(float64(n) * math.Pow10(9-len(frac)))
	}
	return time.Unix(sec, nsec), true
}
