//go:build linux

package bridge

import (
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/api/errdefs/errdefstest"
)

func TestOptionParseBridge(t *testing.T) {
	def := Options{ICC: true, Masquerade: true, Dataplane: "ebpf"}
	tests := []struct {
		name    string
		opts    map[string]string
		dp      string
		want    Options
		wantErr string
	}{
		{name: "defaults", opts: nil, dp: "ebpf", want: def},
		{name: "empty default dataplane", opts: map[string]string{}, dp: "", want: def},
		{name: "kernel default", dp: "kernel", want: Options{ICC: true, Masquerade: true, Dataplane: "kernel"}},
		{name: "all set", dp: "ebpf", opts: map[string]string{
			api.OptBridgeName: "br-test", api.OptEnableICC: "false", api.OptEnableMasq: "0",
			api.OptMTU: "9000", api.OptDataplane: "kernel", "com.example.unknown": "x",
		}, want: Options{Name: "br-test", MTU: 9000, Dataplane: "kernel"}},
		{name: "bool forms", dp: "ebpf", opts: map[string]string{api.OptEnableICC: "TRUE", api.OptEnableMasq: "t"}, want: def},
		{name: "mtu min", dp: "ebpf", opts: map[string]string{api.OptMTU: "68"}, want: Options{ICC: true, Masquerade: true, MTU: 68, Dataplane: "ebpf"}},
		{name: "mtu max", dp: "ebpf", opts: map[string]string{api.OptMTU: "65535"}, want: Options{ICC: true, Masquerade: true, MTU: 65535, Dataplane: "ebpf"}},
		{name: "mtu zero is default", dp: "ebpf", opts: map[string]string{api.OptMTU: "0"}, want: def},
		{name: "15-char name", dp: "ebpf", opts: map[string]string{api.OptBridgeName: "abcdefghijklmno"},
			want: Options{Name: "abcdefghijklmno", ICC: true, Masquerade: true, Dataplane: "ebpf"}},

		{name: "bad icc", dp: "ebpf", opts: map[string]string{api.OptEnableICC: "nope"},
			wantErr: `failed to parse com.docker.network.bridge.enable_icc value: nope (strconv.ParseBool: parsing "nope": invalid syntax)`},
		{name: "bad masq", dp: "ebpf", opts: map[string]string{api.OptEnableMasq: "yes"},
			wantErr: `failed to parse com.docker.network.bridge.enable_ip_masquerade value: yes (strconv.ParseBool: parsing "yes": invalid syntax)`},
		{name: "bad mtu", dp: "ebpf", opts: map[string]string{api.OptMTU: "big"},
			wantErr: `failed to parse com.docker.network.driver.mtu value: big (strconv.Atoi: parsing "big": invalid syntax)`},
		{name: "mtu low", dp: "ebpf", opts: map[string]string{api.OptMTU: "67"},
			wantErr: "failed to parse com.docker.network.driver.mtu value: 67 (MTU must be between 68 and 65535)"},
		{name: "mtu high", dp: "ebpf", opts: map[string]string{api.OptMTU: "65536"},
			wantErr: "failed to parse com.docker.network.driver.mtu value: 65536 (MTU must be between 68 and 65535)"},
		{name: "mtu negative", dp: "ebpf", opts: map[string]string{api.OptMTU: "-1"},
			wantErr: "failed to parse com.docker.network.driver.mtu value: -1 (MTU must be between 68 and 65535)"},
		{name: "bad dataplane", dp: "ebpf", opts: map[string]string{api.OptDataplane: "dpdk"},
			wantErr: `invalid dataplane "dpdk": must be "ebpf" or "kernel"`},
		{name: "bad default dataplane", dp: "xdp", wantErr: `invalid dataplane "xdp": must be "ebpf" or "kernel"`},
		{name: "long name", dp: "ebpf", opts: map[string]string{api.OptBridgeName: "abcdefghijklmnop"},
			wantErr: `invalid bridge name "abcdefghijklmnop": name is longer than 15 characters`},
		{name: "empty name", dp: "ebpf", opts: map[string]string{api.OptBridgeName: ""},
			wantErr: `invalid bridge name "": name is empty`},
		{name: "slash name", dp: "ebpf", opts: map[string]string{api.OptBridgeName: "br/0"},
			wantErr: `invalid bridge name "br/0": name contains invalid character '/'`},
		{name: "space name", dp: "ebpf", opts: map[string]string{api.OptBridgeName: "br 0"},
			wantErr: `invalid bridge name "br 0": name contains invalid character ' '`},
		{name: "colon name", dp: "ebpf", opts: map[string]string{api.OptBridgeName: "br:0"},
			wantErr: `invalid bridge name "br:0": name contains invalid character ':'`},
		{name: "dot name", dp: "ebpf", opts: map[string]string{api.OptBridgeName: ".."},
			wantErr: `invalid bridge name "..": name cannot be . or ..`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOptions(tt.opts, tt.dp)
			errdefstest.CheckErr(t, err, tt.wantErr, errdefs.IsInvalidParameter)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
