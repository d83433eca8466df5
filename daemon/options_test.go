package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"testing"

	"github.com/netd-dev/netd/api"
)

func TestOptionParseBridge(t *testing.T) {
	def := BridgeOptions{ICC: true, Masquerade: true, Dataplane: "ebpf"}
	tests := []struct {
		name    string
		opts    map[string]string
		dp      string
		want    BridgeOptions
		wantErr string
	}{
		{name: "defaults", opts: nil, dp: "ebpf", want: def},
		{name: "empty default dataplane", opts: map[string]string{}, dp: "", want: def},
		{name: "kernel default", dp: "kernel", want: BridgeOptions{ICC: true, Masquerade: true, Dataplane: "kernel"}},
		{name: "all set", dp: "ebpf", opts: map[string]string{
			api.OptBridgeName: "br-test", api.OptEnableICC: "false", api.OptEnableMasq: "0",
			api.OptMTU: "9000", api.OptDataplane: "kernel", "com.example.unknown": "x",
		}, want: BridgeOptions{Name: "br-test", MTU: 9000, Dataplane: "kernel"}},
		{name: "bool forms", dp: "ebpf", opts: map[string]string{api.OptEnableICC: "TRUE", api.OptEnableMasq: "t"}, want: def},
		{name: "mtu min", dp: "ebpf", opts: map[string]string{api.OptMTU: "68"}, want: BridgeOptions{ICC: true, Masquerade: true, MTU: 68, Dataplane: "ebpf"}},
		{name: "mtu max", dp: "ebpf", opts: map[string]string{api.OptMTU: "65535"}, want: BridgeOptions{ICC: true, Masquerade: true, MTU: 65535, Dataplane: "ebpf"}},
		{name: "mtu zero is default", dp: "ebpf", opts: map[string]string{api.OptMTU: "0"}, want: def},
		{name: "15-char name", dp: "ebpf", opts: map[string]string{api.OptBridgeName: "abcdefghijklmno"},
			want: BridgeOptions{Name: "abcdefghijklmno", ICC: true, Masquerade: true, Dataplane: "ebpf"}},

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
			got, err := ParseBridgeOptions(tt.opts, tt.dp)
			checkErr(t, err, tt.wantErr, IsInvalidParameter)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOptionParseDataplane(t *testing.T) {
	for _, s := range []string{"ebpf", "kernel"} {
		if got, err := ParseDataplane(s); err != nil || got != s {
			t.Errorf("ParseDataplane(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "EBPF", "tc", "kernel "} {
		_, err := ParseDataplane(s)
		checkErr(t, err, fmt.Sprintf("invalid dataplane %q: must be \"ebpf\" or \"kernel\"", s), IsInvalidParameter)
	}
}

func TestOptionIDs(t *testing.T) {
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 200 {
		id := NewID()
		if !hex64.MatchString(id) {
			t.Fatalf("NewID() = %q, not 64 hex digits", id)
		}
		if regexp.MustCompile(`^[0-9]{12}$`).MatchString(ShortID(id)) {
			t.Fatalf("NewID() = %q has an all-digit short ID", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
	if got := ShortID("0123456789abcdef"); got != "0123456789ab" {
		t.Errorf("ShortID = %q", got)
	}
	if got := ShortID("abc"); got != "abc" {
		t.Errorf("ShortID(short) = %q", got)
	}
}

func TestOptionErrorKinds(t *testing.T) {
	kinds := []struct {
		err  error
		is   func(error) bool
		name string
	}{
		{errInvalid("bad %s", "x"), IsInvalidParameter, "invalid"},
		{errConflict("taken %d", 1), IsConflict, "conflict"},
		{errNotFound("network %s not found", "n"), IsNotFound, "not found"},
		{errForbidden("no"), IsForbidden, "forbidden"},
	}
	preds := []func(error) bool{IsInvalidParameter, IsConflict, IsNotFound, IsForbidden}
	for i, k := range kinds {
		for j, p := range preds {
			if got := p(k.err); got != (i == j) {
				t.Errorf("%s: predicate %d = %v", k.name, j, got)
			}
			// Wrapping keeps the kind.
			if got := p(fmt.Errorf("create network: %w", k.err)); got != (i == j) {
				t.Errorf("wrapped %s: predicate %d = %v", k.name, j, got)
			}
		}
	}
	if got := errNotFound("network %s not found", "n").Error(); got != "network n not found" {
		t.Errorf("text %q", got)
	}
	// %w inside a kind keeps the cause reachable.
	err := errInvalid("open state: %w", fs.ErrNotExist)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "open state: file does not exist" {
		t.Errorf("wrapped cause lost: %v", err)
	}
	if IsConflict(nil) || IsNotFound(errors.New("plain")) {
		t.Error("plain errors have no kind")
	}
}
