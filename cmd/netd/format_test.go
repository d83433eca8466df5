package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
)

var created = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// fixtureNetworks is deliberately unsorted; n2 must come before n10.
func fixtureNetworks() []api.Network {
	return []api.Network{
		{Name: "web", ID: "4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d", Driver: "bridge", Scope: "local",
			EnableIPv4: true, Internal: true, Created: created, Labels: map[string]string{"team": "net", "env": "prod"}},
		{Name: "n10", ID: "a10a10a10a10a10a10a10a10a10a10a10a10a10a10a10a10a10a10a10a10a10a", Driver: "bridge", Scope: "local", EnableIPv4: true, Created: created},
		{Name: "bridge", ID: "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566", Driver: "bridge", Scope: "local", EnableIPv4: true, Created: created},
		{Name: "none", ID: "0123456789ab0123456789ab0123456789ab0123456789ab0123456789ab0123", Driver: "null", Scope: "local", Created: created},
		{Name: "n2", ID: "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", Driver: "bridge", Scope: "local", EnableIPv4: true, Created: created},
		{Name: "host", ID: "9876543210fe9876543210fe9876543210fe9876543210fe9876543210fe9876", Driver: "host", Scope: "local", Created: created},
	}
}

func lsOutput(t *testing.T, format string, quiet, noTrunc bool) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeNetworks(&b, fixtureNetworks(), format, quiet, noTrunc); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestNetworkLsTable(t *testing.T) {
	want := "" +
		"NETWORK ID     NAME      DRIVER    SCOPE\n" +
		"f2de39df4171   bridge    bridge    local\n" +
		"9876543210fe   host      host      local\n" +
		"b2b2b2b2b2b2   n2        bridge    local\n" +
		"a10a10a10a10   n10       bridge    local\n" +
		"0123456789ab   none      null      local\n" +
		"4d3c2b1a0f9e   web       bridge    local\n"
	for _, f := range []string{"", "table"} {
		if got := lsOutput(t, f, false, false); got != want {
			t.Errorf("format %q:\n%s\nwant:\n%s", f, got, want)
		}
	}
}

func TestNetworkLsNoTruncAndQuiet(t *testing.T) {
	got := lsOutput(t, "", false, true)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("got %d lines:\n%s", len(lines), got)
	}
	if !strings.HasPrefix(lines[0], "NETWORK ID") || !strings.HasPrefix(lines[1], "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566   bridge") {
		t.Errorf("no-trunc:\n%s", got)
	}

	want := "f2de39df4171\n9876543210fe\nb2b2b2b2b2b2\na10a10a10a10\n0123456789ab\n4d3c2b1a0f9e\n"
	if got := lsOutput(t, "", true, false); got != want {
		t.Errorf("-q:\n%s", got)
	}
	if got := lsOutput(t, "table", true, false); got != want {
		t.Errorf("-q --format table:\n%s", got)
	}
	if got := lsOutput(t, "", true, true); !strings.HasPrefix(got, "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566\n") {
		t.Errorf("-q --no-trunc:\n%s", got)
	}
}

func TestNetworkLsTemplates(t *testing.T) {
	tests := []struct{ format, want string }{
		{"{{.Name}}", "bridge\nhost\nn2\nn10\nnone\nweb\n"},
		{"{{.Name}}: {{.Driver}} internal={{.Internal}} ipv6={{.IPv6}}", "bridge: bridge internal=false ipv6=false\n"},
		{`{{.Name}} {{.Labels}} {{.Label "env"}}`, "web env=prod,team=net prod\n"},
		{"{{.Name}} {{.CreatedAt}}", "bridge 2024-01-02 03:04:05 +0000 UTC\n"},
		{"{{upper .Name}}|{{pad .Driver 1 1}}|{{truncate .ID 4}}|{{join (split .Labels \",\") \";\"}}", "BRIDGE| bridge |f2de|\n"},
		{"table {{.ID}}\\t{{.Name}}", "NETWORK ID     NAME\nf2de39df4171   bridge\n"},
		{"table {{.Name}}\t{{.Internal}}\t{{.Labels}}", "NAME      INTERNAL   LABELS\nbridge    false      \n"},
		{"table {{upper .Name}}", "NAME\nBRIDGE\n"},
	}
	for _, tt := range tests {
		got := lsOutput(t, tt.format, false, false)
		if !strings.HasPrefix(got, tt.want) && !strings.Contains(got, "\n"+tt.want) {
			t.Errorf("format %q:\n%q\nwant line(s):\n%q", tt.format, got, tt.want)
		}
	}
	// The web line of a table carries its labels.
	if got := lsOutput(t, "table {{.Name}}\t{{.Labels}}", false, false); !strings.Contains(got, "web       env=prod,team=net\n") {
		t.Errorf("labels column:\n%s", got)
	}

	var b bytes.Buffer
	if err := writeNetworks(&b, fixtureNetworks(), "{{.Nope}}", false, false); err == nil || !strings.Contains(err.Error(), "template parsing error") {
		t.Errorf("unknown field: %v", err)
	}
	if err := writeNetworks(&b, fixtureNetworks(), "{{.Name", false, false); err == nil || !strings.Contains(err.Error(), "template parsing error") {
		t.Errorf("bad template: %v", err)
	}
}

func TestNetworkLsJSON(t *testing.T) {
	got := lsOutput(t, "json", false, false)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("want one object per network, got:\n%s", got)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(lines[5]), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ID": "4d3c2b1a0f9e", "Name": "web", "Driver": "bridge", "Scope": "local", "IPv4": "true",
		"IPv6": "false", "Internal": "true", "Labels": "env=prod,team=net", "CreatedAt": "2024-01-02 03:04:05 +0000 UTC",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("fields %v", m)
	}
}

func TestNetworkLsEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := writeNetworks(&b, nil, "", false, false); err != nil {
		t.Fatal(err)
	}
	if b.String() != "NETWORK ID   NAME      DRIVER    SCOPE\n" {
		t.Errorf("empty table: %q", b.String())
	}
	b.Reset()
	if err := writeNetworks(&b, nil, "", true, false); err != nil || b.Len() != 0 {
		t.Errorf("empty -q: %q %v", b.String(), err)
	}
}

func TestInspectFormatting(t *testing.T) {
	n := fixtureNetworks()[2]
	n.IPAM = api.IPAM{Driver: "default", Config: []api.IPAMConfig{{Subnet: "172.17.0.0/16", Gateway: "172.17.0.1"}}}
	n.Containers = map[string]api.EndpointResource{"c1id": {Name: "c1", IPv4Address: "172.17.0.2/16"}}

	var b bytes.Buffer
	if err := writeInspect(&b, "", []api.Network{n}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "[\n    {\n        \"Name\": \"bridge\",\n        \"Id\": \"f2de39df4171") || !strings.HasSuffix(out, "}\n]\n") {
		t.Errorf("indented JSON:\n%s", out)
	}
	var back []api.Network
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back) != 1 || back[0].IPAM.Config[0].Gateway != "172.17.0.1" {
		t.Errorf("round trip: %v %+v", err, back)
	}

	b.Reset()
	if err := writeInspect(&b, "", []api.Network{}); err != nil || b.String() != "[]\n" {
		t.Errorf("empty: %q %v", b.String(), err)
	}

	tests := []struct{ format, want string }{
		{"{{.Name}}", "bridge\n"},
		{"{{.Id}}", "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566\n"}, // raw JSON fallback
		{"{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "172.17.0.0/16 172.17.0.1\n"},
		{"{{json .IPAM.Config}}", `[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]` + "\n"},
		{"{{range $id, $c := .Containers}}{{$c.Name}}={{$c.IPv4Address}}{{end}}", "c1=172.17.0.2/16\n"},
		{"{{lower (title .Driver)}} {{upper .Scope}}", "bridge LOCAL\n"},
	}
	for _, tt := range tests {
		b.Reset()
		if err := writeInspect(&b, tt.format, []api.Network{n, fixtureNetworks()[0]}); err != nil {
			t.Errorf("%q: %v", tt.format, err)
			continue
		}
		if first := strings.SplitAfter(b.String(), "\n")[0]; first != tt.want {
			t.Errorf("%q: got %q, want %q", tt.format, first, tt.want)
		}
		if strings.Count(b.String(), "\n") < 2 {
			t.Errorf("%q: one line per item expected: %q", tt.format, b.String())
		}
	}
	b.Reset()
	if err := writeInspect(&b, "{{.Missing}}", []api.Network{n}); err == nil || !strings.Contains(err.Error(), "template parsing error") {
		t.Errorf("missing key: %v", err)
	}
}

func TestNaturalLess(t *testing.T) {
	for _, p := range [][2]string{{"n2", "n10"}, {"a", "b"}, {"n1", "n2"}, {"n1", "n1x"}, {"eth2", "eth10"}, {"x", "xy"}} {
		if !naturalLess(p[0], p[1]) || naturalLess(p[1], p[0]) {
			t.Errorf("naturalLess(%q, %q) wrong", p[0], p[1])
		}
	}
	if naturalLess("same", "same") {
		t.Error("irreflexive")
	}
}

func TestTitleCase(t *testing.T) {
	if got := titleCase("hello big-world x_y"); got != "Hello Big-World X_Y" {
		t.Errorf("got %q", got)
	}
}
