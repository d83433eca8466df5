package daemon

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/netd-dev/netd/api/errdefs/errdefstest"

	"github.com/netd-dev/netd/api"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

var checkErr = errdefstest.CheckErr

func TestParseAddressPool(t *testing.T) {
	tests := []struct {
		in      string
		want    AddressPool
		wantErr string
	}{
		{in: "base=10.10.0.0/16,size=24", want: AddressPool{pfx("10.10.0.0/16"), 24}},
		{in: "size=24,base=10.10.0.0/16", want: AddressPool{pfx("10.10.0.0/16"), 24}},
		{in: "BASE=10.10.0.0/16,Size=16", want: AddressPool{pfx("10.10.0.0/16"), 16}},
		{in: "base=10.10.1.7/16,size=24", want: AddressPool{pfx("10.10.0.0/16"), 24}},
		{in: "scope=local,base=192.168.0.0/16,size=20", want: AddressPool{pfx("192.168.0.0/16"), 20}},
		{in: "base=10.0.0.0/8,size=32", want: AddressPool{pfx("10.0.0.0/8"), 32}},
		{in: "base10.10.0.0/16,size=24", wantErr: "invalid field 'base10.10.0.0/16' must be a key=value pair"},
		{in: "base=10.10.0.0/16,size=24,color=red", wantErr: "unexpected key 'color' in 'color=red'"},
		{in: "base=10.10.0.0/16,size=big", wantErr: `invalid size value: "big" (must be integer): strconv.Atoi: parsing "big": invalid syntax`},
		{in: "size=24", wantErr: `invalid default address pool "size=24": base is required`},
		{in: "base=10.10.0.0/16", wantErr: `invalid default address pool "base=10.10.0.0/16": size is required`},
		{in: "base=10.10.0.0,size=24", wantErr: `invalid base pool "10.10.0.0": netip.ParsePrefix("10.10.0.0"): no '/'`},
		{in: "base=fd00::/8,size=64", wantErr: `invalid base pool "fd00::/8": IPv6 is not supported by netd yet`},
		{in: "base=10.10.0.0/16,size=8", wantErr: "invalid pools size: 8"},
		{in: "base=10.10.0.0/16,size=0", wantErr: "invalid pools size: 0"},
		{in: "base=10.10.0.0/16,size=33", wantErr: "invalid pools size: 33"},
		{in: `"base=1`, wantErr: `invalid default address pool "\"base=1": parse error on line 1, column 8: extraneous or missing " in quoted-field`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddressPool(tt.in)
			checkErr(t, err, tt.wantErr, IsInvalidParameter)
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDefaultAddressPools(t *testing.T) {
	pools := DefaultAddressPools()
	if len(pools) != 16 {
		t.Fatalf("got %d pools, want 16", len(pools))
	}
	if pools[0] != (AddressPool{pfx("172.17.0.0/16"), 16}) || pools[14] != (AddressPool{pfx("172.31.0.0/16"), 16}) {
		t.Fatalf("172.x pools wrong: %v .. %v", pools[0], pools[14])
	}
	if pools[15] != (AddressPool{pfx("192.168.0.0/16"), 20}) {
		t.Fatalf("last pool %v", pools[15])
	}
	// The first free subnet on an empty host is docker0's.
	got, err := NextFreeSubnet(pools, nil, nil)
	if err != nil || got != pfx("172.17.0.0/16") {
		t.Fatalf("NextFreeSubnet = %v, %v", got, err)
	}
}

func TestParsePoolSpec(t *testing.T) {
	tests := []struct {
		name    string
		in      api.IPAMConfig
		want    PoolSpec
		wantErr string
	}{
		{name: "empty", in: api.IPAMConfig{}, want: PoolSpec{}},
		{name: "subnet only", in: api.IPAMConfig{Subnet: "10.1.0.0/24"},
			want: PoolSpec{Subnet: pfx("10.1.0.0/24"), Gateway: addr("10.1.0.1")}},
		{name: "host bits masked", in: api.IPAMConfig{Subnet: "10.1.0.77/24"},
			want: PoolSpec{Subnet: pfx("10.1.0.0/24"), Gateway: addr("10.1.0.1")}},
		{name: "full", in: api.IPAMConfig{Subnet: "10.1.0.0/16", IPRange: "10.1.5.0/24", Gateway: "10.1.0.254",
			AuxiliaryAddresses: map[string]string{"router": "10.1.0.2", "skip": ""}},
			want: PoolSpec{Subnet: pfx("10.1.0.0/16"), IPRange: pfx("10.1.5.0/24"), Gateway: addr("10.1.0.254"),
				Aux: map[string]netip.Addr{"router": addr("10.1.0.2")}}},
		{name: "range masked", in: api.IPAMConfig{Subnet: "10.1.0.0/16", IPRange: "10.1.5.9/24"},
			want: PoolSpec{Subnet: pfx("10.1.0.0/16"), IPRange: pfx("10.1.5.0/24"), Gateway: addr("10.1.0.1")}},
		{name: "range equals subnet", in: api.IPAMConfig{Subnet: "10.1.0.0/24", IPRange: "10.1.0.0/24"},
			want: PoolSpec{Subnet: pfx("10.1.0.0/24"), IPRange: pfx("10.1.0.0/24"), Gateway: addr("10.1.0.1")}},
		{name: "slash 31 gateway", in: api.IPAMConfig{Subnet: "10.1.0.0/31", Gateway: "10.1.0.0"},
			want: PoolSpec{Subnet: pfx("10.1.0.0/31"), Gateway: addr("10.1.0.0")}},

		{name: "gateway without subnet", in: api.IPAMConfig{Gateway: "10.0.0.1"},
			wantErr: "every ip-range or gateway must have a corresponding subnet"},
		{name: "range without subnet", in: api.IPAMConfig{IPRange: "10.0.0.0/24"},
			wantErr: "every ip-range or gateway must have a corresponding subnet"},
		{name: "bad subnet", in: api.IPAMConfig{Subnet: "10.0.0.0/33"},
			wantErr: "invalid subnet 10.0.0.0/33: invalid CIDR block notation"},
		{name: "subnet no mask", in: api.IPAMConfig{Subnet: "10.0.0.0"},
			wantErr: "invalid subnet 10.0.0.0: invalid CIDR block notation"},
		{name: "subnet garbage", in: api.IPAMConfig{Subnet: "foo"},
			wantErr: "invalid subnet foo: invalid CIDR block notation"},
		{name: "ipv6 subnet", in: api.IPAMConfig{Subnet: "fd00::/64"},
			wantErr: "invalid subnet fd00::/64: IPv6 is not supported by netd yet"},
		{name: "bad range", in: api.IPAMConfig{Subnet: "10.0.0.0/16", IPRange: "10.0.1.0"},
			wantErr: "invalid ip-range 10.0.1.0: invalid CIDR block notation"},
		{name: "ipv6 range", in: api.IPAMConfig{Subnet: "10.0.0.0/16", IPRange: "fd00::/64"},
			wantErr: "invalid ip-range fd00::/64: parent subnet is an IPv4 block"},
		{name: "range outside", in: api.IPAMConfig{Subnet: "10.0.0.0/16", IPRange: "10.9.0.0/24"},
			wantErr: "no matching subnet for range 10.9.0.0/24"},
		{name: "range bigger", in: api.IPAMConfig{Subnet: "10.0.0.0/24", IPRange: "10.0.0.0/16"},
			wantErr: "invalid ip-range 10.0.0.0/16: CIDR block is bigger than its parent subnet 10.0.0.0/24"},
		{name: "bad gateway", in: api.IPAMConfig{Subnet: "10.0.0.0/24", Gateway: "10.0.0"},
			wantErr: "invalid gateway 10.0.0: invalid address"},
		{name: "ipv6 gateway", in: api.IPAMConfig{Subnet: "10.0.0.0/24", Gateway: "fd00::1"},
			wantErr: "invalid gateway fd00::1: parent subnet is an IPv4 block"},
		{name: "gateway outside", in: api.IPAMConfig{Subnet: "10.0.0.0/24", Gateway: "10.0.1.1"},
			wantErr: "no matching subnet for gateway 10.0.1.1"},
		{name: "gateway network address", in: api.IPAMConfig{Subnet: "10.0.0.0/24", Gateway: "10.0.0.0"},
			wantErr: "failed to allocate gateway (10.0.0.0): Address already in use"},
		{name: "gateway broadcast", in: api.IPAMConfig{Subnet: "10.0.0.0/24", Gateway: "10.0.0.255"},
			wantErr: "failed to allocate gateway (10.0.0.255): Address already in use"},
		{name: "bad aux", in: api.IPAMConfig{Subnet: "10.0.0.0/24", AuxiliaryAddresses: map[string]string{"r": "x"}},
			wantErr: "invalid auxiliary address r: invalid address"},
		{name: "ipv6 aux", in: api.IPAMConfig{Subnet: "10.0.0.0/24", AuxiliaryAddresses: map[string]string{"r": "fd00::2"}},
			wantErr: "invalid auxiliary address r: parent subnet is an IPv4 block"},
		{name: "aux outside", in: api.IPAMConfig{Subnet: "10.0.0.0/24", AuxiliaryAddresses: map[string]string{"r": "10.0.1.2"}},
			wantErr: "no matching subnet for aux-address 10.0.1.2"},
		{name: "aux broadcast", in: api.IPAMConfig{Subnet: "10.0.0.0/24", AuxiliaryAddresses: map[string]string{"r": "10.0.0.255"}},
			wantErr: "failed to allocate secondary ip address (r:10.0.0.255): Address already in use"},
		{name: "aux network", in: api.IPAMConfig{Subnet: "10.0.0.0/24", AuxiliaryAddresses: map[string]string{"r": "10.0.0.0"}},
			wantErr: "failed to allocate secondary ip address (r:10.0.0.0): Address already in use"},
		{name: "aux default gateway", in: api.IPAMConfig{Subnet: "10.0.0.0/24", AuxiliaryAddresses: map[string]string{"r": "10.0.0.1"}},
			wantErr: "failed to allocate secondary ip address (r:10.0.0.1): Address already in use"},
		{name: "aux twice", in: api.IPAMConfig{Subnet: "10.0.0.0/24", AuxiliaryAddresses: map[string]string{"a": "10.0.0.9", "b": "10.0.0.9"}},
			wantErr: "failed to allocate secondary ip address (b:10.0.0.9): Address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePoolSpec(tt.in)
			checkErr(t, err, tt.wantErr, IsInvalidParameter)
			if got.Subnet != tt.want.Subnet || got.IPRange != tt.want.IPRange || got.Gateway != tt.want.Gateway || len(got.Aux) != len(tt.want.Aux) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for k, v := range tt.want.Aux {
				if got.Aux[k] != v {
					t.Fatalf("aux %s = %v, want %v", k, got.Aux[k], v)
				}
			}
		})
	}
}

func TestIPAMSubnetsOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/16", "10.0.5.0/24", true},
		{"10.0.5.0/24", "10.0.0.0/16", true},
		{"10.0.0.0/24", "10.0.1.0/24", false},
		{"10.0.0.0/24", "10.0.0.0/24", true},
		{"10.0.0.7/24", "10.0.0.200/30", true},
		{"0.0.0.0/0", "192.168.1.0/24", true},
		{"172.17.0.0/16", "172.18.0.0/16", false},
	}
	for _, tt := range tests {
		if got := SubnetsOverlap(pfx(tt.a), pfx(tt.b)); got != tt.want {
			t.Errorf("SubnetsOverlap(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if SubnetsOverlap(netip.Prefix{}, pfx("10.0.0.0/8")) {
		t.Error("invalid prefix overlaps")
	}
}

func TestIPAMNextFreeSubnet(t *testing.T) {
	pools := []AddressPool{{pfx("10.10.0.0/16"), 24}, {pfx("10.20.0.0/23"), 24}}
	ps := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, pfx(s))
		}
		return out
	}
	tests := []struct {
		name        string
		pools       []AddressPool
		used, avoid []netip.Prefix
		want        string
		wantErr     string
	}{
		{name: "empty", pools: pools, want: "10.10.0.0/24"},
		{name: "skip used", pools: pools, used: ps("10.10.0.0/24", "10.10.1.0/24"), want: "10.10.2.0/24"},
		{name: "hole", pools: pools, used: ps("10.10.0.0/24", "10.10.2.0/24"), want: "10.10.1.0/24"},
		{name: "small used", pools: pools, used: ps("10.10.0.128/25"), want: "10.10.1.0/24"},
		{name: "route avoided", pools: pools, avoid: ps("10.10.0.0/22"), want: "10.10.4.0/24"},
		{name: "default route ignored", pools: pools, avoid: ps("0.0.0.0/0"), want: "10.10.0.0/24"},
		{name: "whole pool taken", pools: pools, used: ps("10.10.0.0/16"), want: "10.20.0.0/24"},
		{name: "bigger taken", pools: pools, avoid: ps("10.0.0.0/8"), wantErr: ErrNoMoreSubnets.Error()},
		{name: "all taken", pools: pools, used: ps("10.10.0.0/16", "10.20.0.0/24"), avoid: ps("10.20.1.0/24"),
			wantErr: "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"},
		{name: "no pools", wantErr: ErrNoMoreSubnets.Error()},
		{name: "docker defaults", pools: DefaultAddressPools(), used: ps("172.17.0.0/16", "172.18.0.0/16"), avoid: ps("172.19.5.0/24"), want: "172.20.0.0/16"},
		{name: "docker 192.168", pools: DefaultAddressPools(), avoid: ps("172.16.0.0/12", "192.168.0.0/20"), want: "192.168.16.0/20"},
		{name: "pool end", pools: []AddressPool{{pfx("255.255.255.0/24"), 25}}, used: ps("255.255.255.0/25"), want: "255.255.255.128/25"},
		{name: "pool end full", pools: []AddressPool{{pfx("255.255.255.0/24"), 25}}, used: ps("255.255.255.0/25", "255.255.255.128/25"), wantErr: ErrNoMoreSubnets.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NextFreeSubnet(tt.pools, tt.used, tt.avoid)
			checkErr(t, err, tt.wantErr, nil)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoMoreSubnets) {
					t.Fatalf("error %v is not ErrNoMoreSubnets", err)
				}
				return
			}
			if got != pfx(tt.want) {
				t.Fatalf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestIPAMNextFreeSubnetManyUsed(t *testing.T) {
	// 255 of 256 /24s taken: the allocator must still find the last one.
	var used []netip.Prefix
	for i := range 256 {
		if i != 200 {
			used = append(used, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 10, byte(i), 0}), 24))
		}
	}
	got, err := NextFreeSubnet([]AddressPool{{pfx("10.10.0.0/16"), 24}}, used, nil)
	if err != nil || got != pfx("10.10.200.0/24") {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestErrPoolOverlap(t *testing.T) {
	wrapped := errForbidden("invalid pool request: %w", ErrPoolOverlap)
	if !errors.Is(wrapped, ErrPoolOverlap) {
		t.Fatal("wrapped ErrPoolOverlap not found by errors.Is")
	}
	if ErrPoolOverlap.Error() != "Pool overlaps with other one on this address space" {
		t.Fatalf("text %q", ErrPoolOverlap)
	}
	if !IsConflict(ErrPoolOverlap) {
		t.Fatal("ErrPoolOverlap is not a conflict")
	}
}

func TestIPAMDefaultGateway(t *testing.T) {
	tests := map[string]string{
		"172.17.0.0/16":   "172.17.0.1",
		"10.1.2.77/24":    "10.1.2.1",
		"192.168.16.0/20": "192.168.16.1",
		"10.0.0.0/30":     "10.0.0.1",
		"10.0.0.4/31":     "10.0.0.4",
		"10.0.0.9/32":     "10.0.0.9",
	}
	for in, want := range tests {
		if got := DefaultGateway(pfx(in)); got != addr(want) {
			t.Errorf("DefaultGateway(%s) = %v, want %s", in, got, want)
		}
	}
	if DefaultGateway(netip.Prefix{}).IsValid() {
		t.Error("gateway of an invalid prefix")
	}
}

func TestIPAMAllocateAddr(t *testing.T) {
	spec24 := PoolSpec{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.0.1")}
	set := func(ss ...string) map[netip.Addr]bool {
		m := map[netip.Addr]bool{}
		for _, s := range ss {
			m[addr(s)] = true
		}
		return m
	}
	tests := []struct {
		name    string
		spec    PoolSpec
		inUse   map[netip.Addr]bool
		want    string
		wantErr string
	}{
		{name: "first", spec: spec24, want: "10.0.0.2"},
		{name: "skips used", spec: spec24, inUse: set("10.0.0.2", "10.0.0.3"), want: "10.0.0.4"},
		{name: "fills hole", spec: spec24, inUse: set("10.0.0.3"), want: "10.0.0.2"},
		{name: "gateway elsewhere", spec: PoolSpec{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.0.254")}, want: "10.0.0.1"},
		{name: "skips aux", spec: PoolSpec{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.0.1"),
			Aux: map[string]netip.Addr{"a": addr("10.0.0.2")}}, want: "10.0.0.3"},
		{name: "ip range", spec: PoolSpec{Subnet: pfx("10.0.0.0/16"), IPRange: pfx("10.0.5.0/24"), Gateway: addr("10.0.0.1")},
			want: "10.0.5.0"},
		{name: "ip range at subnet start", spec: PoolSpec{Subnet: pfx("10.0.0.0/16"), IPRange: pfx("10.0.0.0/30"), Gateway: addr("10.0.0.1")},
			want: "10.0.0.2"},
		{name: "range exhausted", spec: PoolSpec{Subnet: pfx("10.0.0.0/16"), IPRange: pfx("10.0.0.0/30"), Gateway: addr("10.0.0.1")},
			inUse: set("10.0.0.2", "10.0.0.3"), wantErr: "no available IPv4 addresses on this network's address pools"},
		{name: "broadcast skipped", spec: PoolSpec{Subnet: pfx("10.0.0.0/30"), Gateway: addr("10.0.0.1")},
			inUse: set("10.0.0.2"), wantErr: "no available IPv4 addresses on this network's address pools"},
		{name: "slash 31", spec: PoolSpec{Subnet: pfx("10.0.0.0/31"), Gateway: addr("10.0.0.0")}, want: "10.0.0.1"},
		{name: "no subnet", spec: PoolSpec{}, wantErr: "allocate address: network has no subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AllocateAddr(tt.spec, tt.inUse)
			checkErr(t, err, tt.wantErr, nil)
			if tt.wantErr != "" {
				return
			}
			if got != addr(tt.want) {
				t.Fatalf("got %v, want %s", got, tt.want)
			}
		})
	}
	if _, err := AllocateAddr(PoolSpec{Subnet: pfx("10.0.0.0/30"), Gateway: addr("10.0.0.1")}, set("10.0.0.2")); !errors.Is(err, ErrNoAvailableIPs) {
		t.Fatalf("exhausted error %v is not ErrNoAvailableIPs", err)
	}
}

func TestIPAMAllocateAddrFillsSubnet(t *testing.T) {
	// Allocating until exhaustion hands out every host address once.
	spec := PoolSpec{Subnet: pfx("10.0.0.0/28"), Gateway: addr("10.0.0.1"), Aux: map[string]netip.Addr{"x": addr("10.0.0.7")}}
	inUse := map[netip.Addr]bool{}
	for range 20 {
		a, err := AllocateAddr(spec, inUse)
		if err != nil {
			break
		}
		if inUse[a] {
			t.Fatalf("%v handed out twice", a)
		}
		inUse[a] = true
	}
	if len(inUse) != 16-4 { // minus network, broadcast, gateway, aux
		t.Fatalf("allocated %d addresses, want 12", len(inUse))
	}
}

func TestIPAMCheckRequestedAddr(t *testing.T) {
	spec := PoolSpec{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.128/25"), Gateway: addr("10.0.0.1"),
		Aux: map[string]netip.Addr{"r": addr("10.0.0.5")}}
	inUse := map[netip.Addr]bool{addr("10.0.0.9"): true}
	tests := []struct {
		a       netip.Addr
		wantErr string
		kind    func(error) bool
	}{
		{a: addr("10.0.0.10")},
		{a: addr("10.0.0.200")},
		{a: addr("::ffff:10.0.0.11")},
		{a: addr("10.0.1.10"), wantErr: "Invalid address 10.0.1.10: It does not belong to any of this network's subnets", kind: IsInvalidParameter},
		{a: addr("fd00::1"), wantErr: "Invalid address fd00::1: It does not belong to any of this network's subnets", kind: IsInvalidParameter},
		{a: addr("10.0.0.0"), wantErr: "Address already in use", kind: IsConflict},
		{a: addr("10.0.0.255"), wantErr: "Address already in use", kind: IsConflict},
		{a: addr("10.0.0.1"), wantErr: "Address already in use", kind: IsConflict},
		{a: addr("10.0.0.5"), wantErr: "Address already in use", kind: IsConflict},
		{a: addr("10.0.0.9"), wantErr: "Address already in use", kind: IsConflict},
		{a: netip.Addr{}, wantErr: "invalid address: empty", kind: IsInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.a.String(), func(t *testing.T) {
			checkErr(t, CheckRequestedAddr(spec, tt.a, inUse), tt.wantErr, tt.kind)
		})
	}
}
