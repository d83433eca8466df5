package main

import (
	"io"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func parseQuery(q string) (url.Values, error) { return url.ParseQuery(q) }

func TestPermuteArgs(t *testing.T) {
	app := newApp(strings.NewReader(""), io.Discard, io.Discard)
	tests := []struct{ in, want string }{
		{"netd network ls", "netd network ls"},
		{"netd -H /s network create foo --subnet 10.0.0.0/24 -d bridge --internal",
			"netd -H /s network create --subnet 10.0.0.0/24 --driver bridge --internal foo"},
		{"netd network create foo --internal --label=a=b", "netd network create --internal --label=a=b foo"},
		{"netd network connect n c --ip 10.0.0.2", "netd network connect --ip 10.0.0.2 n c"},
		{"netd net ls", "netd net ls"}, // unknown command: untouched
		{"netd container run web --network n1 -- ping -c 1 10.0.0.1",
			"netd container run --network n1 web -- ping -c 1 10.0.0.1"},
		{"netd container run web --network n1 ping -c 1 x",
			"netd container run --network n1 web -- ping -c 1 x"},
		{"netd container exec web ip -4 addr", "netd container exec web -- ip -4 addr"},
		{"netd container exec web -- ip -4 addr", "netd container exec web -- ip -4 addr"},
		{"netd network rm a -f b", "netd network rm --force a b"},
		// A trailing value flag stays last, so it is reported as missing its value.
		{"netd network create x -o", "netd network create -o"},
		{"netd network create x --subnet 10.0.0.0/24 -d", "netd network create --subnet 10.0.0.0/24 -d"},
		{"netd network ls -f driver=x --filter=name=y -q", "netd network ls --filter driver=x --filter=name=y --quiet"},
	}
	for _, tt := range tests {
		got := permuteArgs(app, strings.Fields(tt.in))
		if !reflect.DeepEqual(got, strings.Fields(tt.want)) {
			t.Errorf("permuteArgs(%q)\n = %q\nwant %q", tt.in, strings.Join(got, " "), tt.want)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		name string
		cmd  []string
	}{
		{[]string{"web", "--", "ip", "a"}, "web", []string{"ip", "a"}},
		{[]string{"web", "ip", "--", "x"}, "web", []string{"ip", "--", "x"}},
		{[]string{"web"}, "web", []string{}},
		{nil, "", nil},
	} {
		name, cmd := splitCommand(tt.in)
		if name != tt.name || len(cmd) != len(tt.cmd) || (len(cmd) > 0 && !reflect.DeepEqual(cmd, tt.cmd)) {
			t.Errorf("splitCommand(%q) = %q %q", tt.in, name, cmd)
		}
	}
}

func TestParseKV(t *testing.T) {
	m, err := parseKV("opt", []string{"a=1", "b", "c=x=y", "d="})
	if err != nil || !reflect.DeepEqual(m, map[string]string{"a": "1", "b": "", "c": "x=y", "d": ""}) {
		t.Errorf("%v %v", m, err)
	}
	if _, err := parseKV("opt", []string{" =1"}); err == nil {
		t.Error("empty key accepted")
	}
	f, err := parseFilters([]string{"Label=a=b", "label=c", " driver = bridge"})
	if err != nil || !reflect.DeepEqual(f, map[string][]string{"label": {"a=b", "c"}, "driver": {"bridge"}}) {
		t.Errorf("filters %v %v", f, err)
	}
	if _, err := parseFilters([]string{"dangling"}); err == nil {
		t.Error("filter without = accepted")
	}
}
