package daemon

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
)

func TestFilterParse(t *testing.T) {
	tests := []struct {
		raw     string
		want    Filters
		wantErr string
	}{
		{raw: "", want: Filters{}},
		{raw: "{}", want: Filters{}},
		{raw: `{"name":["b","a","b"],"driver":["bridge"]}`, want: Filters{"name": {"a", "b"}, "driver": {"bridge"}}},
		{raw: `{"label":{"x=1":true,"y":true,"off":false}}`, want: Filters{"label": {"x=1", "y"}}},
		{raw: `{"name":"web"}`, wantErr: "invalid filter"},
		{raw: `not json`, wantErr: "invalid filter"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseFilters(tt.raw)
			checkErr(t, err, tt.wantErr, IsInvalidParameter)
			if tt.wantErr == "" && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	f := Filters{"name": {"a"}, "foo": {"x"}, "bar": nil}
	checkErr(t, f.Validate("name", "foo", "bar"), "", nil)
	checkErr(t, f.Validate("name", "foo"), "invalid filter 'bar'", IsInvalidParameter)
	checkErr(t, f.Validate("name"), "invalid filter 'bar'", IsInvalidParameter) // sorted: first bad key
	checkErr(t, Filters{}.Validate(), "", nil)
}

func TestFilterMatchNetwork(t *testing.T) {
	custom := NetworkFacts{Network: api.Network{
		Name: "web-front", ID: "3f2a9c0d1e2b" + strings.Repeat("0", 52), Driver: "bridge", Scope: "local",
		Labels: map[string]string{"env": "prod", "team": "a"},
	}, Dangling: true}
	used := custom
	used.Dangling = false
	builtin := NetworkFacts{Network: api.Network{Name: "bridge", ID: "abcdef", Driver: "bridge", Scope: "local"}, Builtin: true, Dangling: true}

	tests := []struct {
		name    string
		f       Filters
		nf      NetworkFacts
		want    bool
		wantErr string
	}{
		{name: "no filter", f: Filters{}, nf: custom, want: true},
		{name: "driver", f: Filters{"driver": {"bridge"}}, nf: custom, want: true},
		{name: "driver no", f: Filters{"driver": {"macvlan"}}, nf: custom, want: false},
		{name: "driver ored", f: Filters{"driver": {"macvlan", "bridge"}}, nf: custom, want: true},
		{name: "driver exact only", f: Filters{"driver": {"bri"}}, nf: custom, want: false},
		{name: "name exact", f: Filters{"name": {"web-front"}}, nf: custom, want: true},
		{name: "name substring", f: Filters{"name": {"front"}}, nf: custom, want: true},
		{name: "name regexp", f: Filters{"name": {"^web-"}}, nf: custom, want: true},
		{name: "name no", f: Filters{"name": {"db"}}, nf: custom, want: false},
		{name: "name ored", f: Filters{"name": {"db", "web"}}, nf: custom, want: true},
		{name: "name bad regexp", f: Filters{"name": {"web["}}, nf: custom, want: false},
		{name: "id prefix", f: Filters{"id": {"3f2a9c"}}, nf: custom, want: true},
		{name: "id full", f: Filters{"id": {custom.Network.ID}}, nf: custom, want: true},
		{name: "id no", f: Filters{"id": {"ffff"}}, nf: custom, want: false},
		{name: "label key", f: Filters{"label": {"env"}}, nf: custom, want: true},
		{name: "label kv", f: Filters{"label": {"env=prod"}}, nf: custom, want: true},
		{name: "label kv wrong", f: Filters{"label": {"env=dev"}}, nf: custom, want: false},
		{name: "labels all must match", f: Filters{"label": {"env=prod", "team=b"}}, nf: custom, want: false},
		{name: "labels both match", f: Filters{"label": {"env=prod", "team"}}, nf: custom, want: true},
		{name: "label on unlabelled", f: Filters{"label": {"env"}}, nf: builtin, want: false},
		{name: "scope", f: Filters{"scope": {"local"}}, nf: custom, want: true},
		{name: "scope no", f: Filters{"scope": {"swarm"}}, nf: custom, want: false},
		{name: "type custom", f: Filters{"type": {"custom"}}, nf: custom, want: true},
		{name: "type custom builtin", f: Filters{"type": {"custom"}}, nf: builtin, want: false},
		{name: "type builtin", f: Filters{"type": {"builtin"}}, nf: builtin, want: true},
		{name: "type both", f: Filters{"type": {"builtin", "custom"}}, nf: custom, want: true},
		{name: "dangling true", f: Filters{"dangling": {"true"}}, nf: custom, want: true},
		{name: "dangling 1 used", f: Filters{"dangling": {"1"}}, nf: used, want: false},
		{name: "dangling false used", f: Filters{"dangling": {"false"}}, nf: used, want: true},
		{name: "dangling 0 unused", f: Filters{"dangling": {"0"}}, nf: custom, want: false},
		{name: "builtin never dangling", f: Filters{"dangling": {"true"}}, nf: builtin, want: false},
		{name: "builtin in dangling=false", f: Filters{"dangling": {"false"}}, nf: builtin, want: true},
		{name: "keys anded", f: Filters{"driver": {"bridge"}, "name": {"db"}}, nf: custom, want: false},
		{name: "keys anded match", f: Filters{"driver": {"bridge"}, "name": {"web"}, "label": {"team=a"}}, nf: custom, want: true},

		{name: "bad key", f: Filters{"color": {"red"}}, nf: custom, wantErr: "invalid filter 'color'"},
		{name: "bad type", f: Filters{"type": {"foo"}}, nf: custom, wantErr: "invalid filter: 'type'='foo'"},
		{name: "bad dangling", f: Filters{"dangling": {"maybe"}}, nf: custom,
			wantErr: `invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`},
		{name: "two danglings", f: Filters{"dangling": {"true", "false"}}, nf: custom,
			wantErr: `got more than one value for filter key "dangling"`},
		{name: "bad type even if other key fails", f: Filters{"type": {"x"}, "name": {"nomatch"}}, nf: custom,
			wantErr: "invalid filter: 'type'='x'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MatchNetwork(tt.f, tt.nf)
			checkErr(t, err, tt.wantErr, IsInvalidParameter)
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterMatchPrune(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	old := api.Network{Name: "old", Created: now.Add(-48 * time.Hour), Labels: map[string]string{"env": "dev"}}
	fresh := api.Network{Name: "fresh", Created: now.Add(-time.Minute), Labels: map[string]string{"env": "prod", "keep": "yes"}}

	tests := []struct {
		name    string
		f       Filters
		n       api.Network
		want    bool
		wantErr string
	}{
		{name: "no filter", f: Filters{}, n: fresh, want: true},
		{name: "until duration old", f: Filters{"until": {"24h"}}, n: old, want: true},
		{name: "until duration fresh", f: Filters{"until": {"24h"}}, n: fresh, want: false},
		{name: "until rfc3339", f: Filters{"until": {"2025-06-01T00:00:00Z"}}, n: old, want: true},
		{name: "until rfc3339 fresh", f: Filters{"until": {"2025-06-01T00:00:00Z"}}, n: fresh, want: false},
		{name: "until rfc3339 offset", f: Filters{"until": {"2025-06-01T13:59:30+02:00"}}, n: fresh, want: true},
		{name: "until rfc3339 nano", f: Filters{"until": {"2025-06-01T11:59:00.5Z"}}, n: fresh, want: true},
		{name: "until local date", f: Filters{"until": {"2025-06-01"}}, n: fresh, want: false},
		{name: "until local date old", f: Filters{"until": {"2025-06-01"}}, n: old, want: true},
		{name: "until local hour", f: Filters{"until": {"2025-06-01T12"}}, n: fresh, want: true},
		{name: "until local minute", f: Filters{"until": {"2025-06-01T11:58"}}, n: fresh, want: false},
		{name: "until unix", f: Filters{"until": {"1748779200"}}, n: fresh, want: true}, // == now
		{name: "until unix fraction", f: Filters{"until": {"1748779139.5"}}, n: fresh, want: false},
		{name: "until unix zero", f: Filters{"until": {"0"}}, n: old, want: false},
		{name: "label", f: Filters{"label": {"env=dev"}}, n: old, want: true},
		{name: "label no", f: Filters{"label": {"env=dev"}}, n: fresh, want: false},
		{name: "not label", f: Filters{"label!": {"keep"}}, n: fresh, want: false},
		{name: "not label other", f: Filters{"label!": {"keep"}}, n: old, want: true},
		{name: "not label all must match to exclude", f: Filters{"label!": {"keep", "env=dev"}}, n: fresh, want: true},
		{name: "until and label", f: Filters{"until": {"1h"}, "label": {"env"}}, n: old, want: true},

		{name: "bad key", f: Filters{"name": {"x"}}, n: old, wantErr: "invalid filter 'name'"},
		{name: "two untils", f: Filters{"until": {"1h", "2h"}}, n: old, wantErr: "more than one until filter specified"},
		{name: "bad until", f: Filters{"until": {"yesterday"}}, n: old, wantErr: `failed to parse value as time or duration: "yesterday"`},
		{name: "bad date", f: Filters{"until": {"2025-13-01"}}, n: old, wantErr: `parsing time "2025-13-01": month out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MatchPrune(tt.f, tt.n, now)
			checkErr(t, err, tt.wantErr, IsInvalidParameter)
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
