//go:build linux

package main

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
)

// idMap names the IDs one side has shown: full ID -> "net:NAME" or
// "ctr:NAME". Entries stay after the object is gone, so an error naming a
// removed network's ID still reads the same on both sides.
type idMap map[string]string

// learn records the IDs of the networks and containers the side has now.
func (m idMap) learn(ctx context.Context, s *side, docker bool) {
	add := func(kind string, r result) {
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			id, name, ok := strings.Cut(line, " ")
			if ok && fullID.MatchString(id) {
				m[id] = kind + ":" + strings.TrimPrefix(name, "/")
			}
		}
	}
	add("net", s.cmd(ctx, "", "network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}}"))
	if docker {
		add("ctr", s.cmd(ctx, "", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"))
	} else {
		add("ctr", s.cmd(ctx, "", "container", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}}"))
	}
}

var (
	fullID = regexp.MustCompile(`^[0-9a-f]{64}$`)
	anyID  = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	// 2026-12-02T15:03:33.905448784Z, 2026-12-02T15:03:33+01:00
	rfc3339 = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	// Go's time.String(): 2026-12-02 15:03:33.905448784 +0000 UTC
	goTime = regexp.MustCompile(`\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} [A-Z]+\b`)
	mac    = regexp.MustCompile(`\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b`)
	// The program's name where it names itself (usage texts, errors).
	dockerName = regexp.MustCompile(`\bdocker (network|container)\b`)
	// docker: 'docker network ls' accepts no arguments
	dockerPrefix = regexp.MustCompile(`(?m)^docker: `)
)

// normalise replaces what differs between two correct daemons by nature.
func normalise(r result, ids idMap, docker bool) result {
	f := func(s string) string {
		// Longest first, so a full ID is not replaced by its short form.
		full := make([]string, 0, len(ids))
		for id := range ids {
			full = append(full, id)
		}
		sort.Strings(full)
		for _, id := range full {
			s = strings.ReplaceAll(s, id, "<"+ids[id]+">")
		}
		s = anyID.ReplaceAllString(s, "<id>")
		for _, id := range full {
			s = regexp.MustCompile(`\b`+id[:12]+`\b`).ReplaceAllString(s, "<"+ids[id]+":short>")
		}
		s = rfc3339.ReplaceAllString(s, "<time>")
		s = goTime.ReplaceAllString(s, "<time>")
		s = mac.ReplaceAllString(s, "<mac>")
		if docker {
			s = dockerName.ReplaceAllString(s, "netd $1")
			s = dockerPrefix.ReplaceAllString(s, "netd: ")
		}
		return s
	}
	return result{f(r.stdout), f(r.stderr), r.exit}
}

func (r result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit %d\n", r.exit)
	if r.stdout != "" {
		fmt.Fprintf(&b, "stdout:\n%s", ensureNL(r.stdout))
	}
	if r.stderr != "" {
		fmt.Fprintf(&b, "stderr:\n%s", ensureNL(r.stderr))
	}
	return b.String()
}

func ensureNL(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// diff shows docker's (-) against netd's (+) normalised outputs.
func diff(d, n result) string {
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(d.String()), B: difflib.SplitLines(n.String()),
		FromFile: "docker", ToFile: "netd", Context: 3,
	})
	if err != nil {
		text = fmt.Sprintf("(diff failed: %v)\n--- docker\n%s+++ netd\n%s", err, d, n)
	}
	return indent(text)
}

// enableIPv4 is the field dockerd 20.10 does not have, indented or compact.
var enableIPv4 = regexp.MustCompile(`"EnableIPv4": ?true,(\n *)?`)

// withoutEnableIPv4 is netd's inspect output as dockerd 20.10 would print it.
func withoutEnableIPv4(r result) result {
	return result{enableIPv4.ReplaceAllString(r.stdout, ""), r.stderr, r.exit}
}
