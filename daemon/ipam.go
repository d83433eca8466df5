package daemon

import (
	"encoding/csv"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netd-dev/netd/api"
)

// ErrPoolOverlap is Docker's error for a subnet that overlaps another network's.
var ErrPoolOverlap = errConflict("Pool overlaps with other one on this address space")

// ErrNoMoreSubnets says every default pool is used up (Docker's text).
var ErrNoMoreSubnets = errInvalid("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")

// ErrNoAvailableIPs says a network has no free address left. The caller adds
// the network like Docker: fmt.Errorf("%w: %s (%s)", err, name, id).
var ErrNoAvailableIPs = errors.New("no available IPv4 addresses on this network's address pools")

// ErrAddressInUse is Docker's text for a requested address that is taken.
var ErrAddressInUse = errConflict("Address already in use")

// AddressPool is one --default-address-pool: Base is split into subnets of
// prefix length Size.
type AddressPool struct {
	Base netip.Prefix
	Size int
}

func (p AddressPool) String() string { return fmt.Sprintf("base=%s,size=%d", p.Base, p.Size) }

// ParseAddressPool parses Docker's "base=10.10.0.0/16,size=24" syntax.
func ParseAddressPool(s string) (AddressPool, error) {
	fields, err := csv.NewReader(strings.NewReader(s)).Read()
	if err != nil {
		return AddressPool{}, errInvalid("invalid default address pool %q: %v", s, err)
	}
	var base string
	size := -1
	for _, field := range fields {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return AddressPool{}, errInvalid("invalid field '%s' must be a key=value pair", field)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.ToLower(strings.TrimSpace(v))
		switch k {
		case "scope":
			// Docker accepts it; netd has one (local) scope.
		case "base":
			base = v
		case "size":
			if size, err = strconv.Atoi(v); err != nil {
				return AddressPool{}, errInvalid("invalid size value: %q (must be integer): %v", v, err)
			}
		default:
			return AddressPool{}, errInvalid("unexpected key '%s' in '%s'", k, field)
		}
	}
	if base == "" {
		return AddressPool{}, errInvalid("invalid default address pool %q: base is required", s)
	}
	if size < 0 {
		return AddressPool{}, errInvalid("invalid default address pool %q: size is required", s)
	}
	pfx, err := netip.ParsePrefix(base)
	if err != nil {
		return AddressPool{}, errInvalid("invalid base pool %q: %v", base, err)
	}
	pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()).Masked()
	if !pfx.Addr().Is4() {
		return AddressPool{}, errInvalid("invalid base pool %q: IPv6 is not supported by netd yet", base)
	}
	if size <= 0 || size < pfx.Bits() || size > 32 {
		return AddressPool{}, errInvalid("invalid pools size: %d", size)
	}
	if err := checkReserved(pfx); err != nil {
		return AddressPool{}, errInvalid("invalid base pool %q: %v", base, err)
	}
	return AddressPool{Base: pfx, Size: size}, nil
}

// reservedIPv4 are the blocks no interface of a network can use: a subnet
// overlapping one makes every container create fail later in the kernel.
var reservedIPv4 = []struct {
	block netip.Prefix
	what  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" addresses`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback addresses"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast addresses"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the limited broadcast address"},
}

// checkReserved says which reserved block p overlaps, if any.
func checkReserved(p netip.Prefix) error {
	for _, r := range reservedIPv4 {
		if p.Overlaps(r.block) {
			return fmt.Errorf("it overlaps %s (%s), which cannot be used for a network", r.block, r.what)
		}
	}
	return nil
}

// DefaultAddressPools are Docker's local-scope defaults: 172.17.0.0/16 to
// 172.31.0.0/16 as /16s, then 192.168.0.0/16 cut in /20s.
func DefaultAddressPools() []AddressPool {
	pools := make([]AddressPool, 0, 16)
	for i := 17; i <= 31; i++ {
		pools = append(pools, AddressPool{Base: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16), Size: 16})
	}
	return append(pools, AddressPool{Base: netip.MustParsePrefix("192.168.0.0/16"), Size: 20})
}

// PoolSpec is one validated IPAM config block. Subnet is masked; IPRange is
// invalid (zero) when not given; Gateway is the configured one or, when a
// Subnet is set, DefaultGateway(Subnet). Aux holds the auxiliary addresses.
type PoolSpec struct {
	Subnet, IPRange netip.Prefix
	Gateway         netip.Addr
	Aux             map[string]netip.Addr
}

// ParsePoolSpec parses and checks one api.IPAMConfig. A config without a
// Subnet (and nothing else) yields a zero PoolSpec: the caller picks a subnet
// with NextFreeSubnet. Texts are what a docker user sees for the same input.
func ParsePoolSpec(c api.IPAMConfig) (PoolSpec, error) {
	var spec PoolSpec
	if c.Subnet == "" {
		if c.IPRange != "" || c.Gateway != "" || len(c.AuxiliaryAddresses) > 0 {
			return PoolSpec{}, errInvalid("every ip-range or gateway must have a corresponding subnet")
		}
		return spec, nil
	}
	subnet, err := netip.ParsePrefix(c.Subnet)
	if err != nil {
		return PoolSpec{}, errInvalid("invalid subnet %s: invalid CIDR block notation", c.Subnet)
	}
	if !subnet.Addr().Is4() {
		return PoolSpec{}, errInvalid("invalid subnet %s: IPv6 is not supported by netd yet", c.Subnet)
	}
	spec.Subnet = subnet.Masked()
	if err := checkReserved(spec.Subnet); err != nil {
		return PoolSpec{}, errInvalid("invalid subnet %s: %v", c.Subnet, err)
	}

	if c.IPRange != "" {
		r, err := netip.ParsePrefix(c.IPRange)
		if err != nil {
			return PoolSpec{}, errInvalid("invalid ip-range %s: invalid CIDR block notation", c.IPRange)
		}
		if !r.Addr().Is4() {
			return PoolSpec{}, errInvalid("invalid ip-range %s: parent subnet is an IPv4 block", c.IPRange)
		}
		r = r.Masked()
		if !spec.Subnet.Contains(r.Addr()) {
			return PoolSpec{}, errInvalid("no matching subnet for range %s", r)
		}
		if r.Bits() < spec.Subnet.Bits() {
			return PoolSpec{}, errInvalid("invalid ip-range %s: CIDR block is bigger than its parent subnet %s", c.IPRange, spec.Subnet)
		}
		spec.IPRange = r
	}

	if c.Gateway != "" {
		gw, err := addrInSubnet(spec.Subnet, c.Gateway, "gateway "+c.Gateway, "gateway")
		if err != nil {
			return PoolSpec{}, err
		}
		if isNetworkOrBroadcast(spec.Subnet, gw) {
			return PoolSpec{}, errInvalid("failed to allocate gateway (%s): Address already in use", gw)
		}
		spec.Gateway = gw
	} else {
		spec.Gateway = DefaultGateway(spec.Subnet)
	}

	for _, name := range slices.Sorted(maps.Keys(c.AuxiliaryAddresses)) {
		v := c.AuxiliaryAddresses[name]
		if v == "" {
			continue // Docker skips empty values
		}
		a, err := addrInSubnet(spec.Subnet, v, "auxiliary address "+name, "aux-address")
		if err != nil {
			return PoolSpec{}, err
		}
		taken := isNetworkOrBroadcast(spec.Subnet, a) || a == spec.Gateway
		for _, other := range spec.Aux {
			taken = taken || other == a
		}
		if taken {
			return PoolSpec{}, errInvalid("failed to allocate secondary ip address (%s:%s): Address already in use", name, a)
		}
		if spec.Aux == nil {
			spec.Aux = make(map[string]netip.Addr)
		}
		spec.Aux[name] = a
	}
	return spec, nil
}

// addrInSubnet parses s, an IPv4 address that must lie in subnet; desc
// ("gateway 10.0.0.1", "auxiliary address host1") and kind ("gateway",
// "aux-address") name it in the errors, in Docker's words.
func addrInSubnet(subnet netip.Prefix, s, desc, kind string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errInvalid("invalid %s: invalid address", desc)
	}
	if a = a.Unmap(); !a.Is4() {
		return netip.Addr{}, errInvalid("invalid %s: parent subnet is an IPv4 block", desc)
	}
	if !subnet.Contains(a) {
		return netip.Addr{}, errInvalid("no matching subnet for %s %s", kind, a)
	}
	return a, nil
}

// SubnetsOverlap reports whether a and b share at least one address.
func SubnetsOverlap(a, b netip.Prefix) bool {
	if !a.IsValid() || !b.IsValid() {
		return false
	}
	return a.Masked().Overlaps(b.Masked())
}

// NextFreeSubnet returns the first subnet, pool by pool in order, that
// overlaps neither a network's subnet (used) nor a host route (avoid).
// Default routes (/0) in avoid are ignored: they would block every pool.
// IPv6 pools are skipped.
func NextFreeSubnet(pools []AddressPool, used, avoid []netip.Prefix) (netip.Prefix, error) {
	taken := make([]netip.Prefix, 0, len(used)+len(avoid))
	for _, p := range used {
		if p.IsValid() {
			taken = append(taken, p.Masked())
		}
	}
	for _, p := range avoid {
		if p.IsValid() && p.Bits() > 0 {
			taken = append(taken, p.Masked())
		}
	}
	// Sorted by first address, a candidate is compared only with the taken
	// prefixes that start before it ends: creates stay flat at 1,000 networks.
	slices.SortFunc(taken, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, pool := range pools {
		base := pool.Base.Masked()
		if !base.Addr().Is4() || pool.Size < base.Bits() || pool.Size > 32 {
			continue
		}
		last := lastAddr(base)
		addr := base.Addr()
		lo := 0 // taken[:lo] all end before the current candidate
		// Each pass either returns or jumps past a taken prefix, so the loop
		// runs at most len(taken)+1 times per pool.
		for range len(taken) + 1 {
			cand := netip.PrefixFrom(addr, pool.Size)
			end := lastAddr(cand)
			for lo < len(taken) && lastAddr(taken[lo]).Less(cand.Addr()) {
				lo++
			}
			clash := false
			for _, t := range taken[lo:] {
				if lastAddr(cand).Less(t.Addr()) {
					break // this and every later one start after the candidate
				}
				if t.Overlaps(cand) {
					clash = true
					if le := lastAddr(t); end.Less(le) {
						end = le
					}
				}
			}
			if !clash {
				return cand, nil
			}
			if !end.Less(last) {
				break
			}
			// Next candidate boundary after end (candidates are aligned to Size).
			next, _ := end.Next().Prefix(pool.Size)
			if next.Addr().Less(end.Next()) {
				next = netip.PrefixFrom(lastAddr(next).Next(), pool.Size)
			}
			addr = next.Addr()
			if !addr.IsValid() || !base.Contains(addr) {
				break
			}
		}
	}
	return netip.Prefix{}, ErrNoMoreSubnets
}

// DefaultGateway is the first host address of the subnet (172.17.0.1 for
// 172.17.0.0/16). /31 and /32 have no network address, so it is the first one.
func DefaultGateway(subnet netip.Prefix) netip.Addr {
	if !subnet.IsValid() {
		return netip.Addr{}
	}
	subnet = subnet.Masked()
	if subnet.Addr().BitLen()-subnet.Bits() < 2 {
		return subnet.Addr()
	}
	return subnet.Addr().Next()
}

// AllocateAddr returns the lowest free address of spec.IPRange (or of
// spec.Subnet when there is no range), skipping the subnet's network and
// broadcast addresses, the gateway, auxiliary addresses and inUse.
func AllocateAddr(spec PoolSpec, inUse map[netip.Addr]bool) (netip.Addr, error) {
	if !spec.Subnet.IsValid() {
		return netip.Addr{}, errors.New("allocate address: network has no subnet")
	}
	r := spec.Subnet
	if spec.IPRange.IsValid() {
		r = spec.IPRange
	}
	reserved := make(map[netip.Addr]bool, len(spec.Aux)+1)
	reserved[spec.Gateway] = true
	for _, a := range spec.Aux {
		reserved[a] = true
	}
	// Every skipped address is reserved or in use, which bounds the loop.
	limit := len(inUse) + len(reserved) + 3
	a := r.Addr()
	for range limit {
		if !a.IsValid() || !r.Contains(a) {
			break
		}
		if !isNetworkOrBroadcast(spec.Subnet, a) && !reserved[a] && !inUse[a] {
			return a, nil
		}
		a = a.Next()
	}
	return netip.Addr{}, ErrNoAvailableIPs
}

// CheckRequestedAddr checks an address the user asked for (--ip).
func CheckRequestedAddr(spec PoolSpec, a netip.Addr, inUse map[netip.Addr]bool) error {
	if !a.IsValid() {
		return errInvalid("invalid address: empty")
	}
	a = a.Unmap()
	if !spec.Subnet.IsValid() || !spec.Subnet.Contains(a) {
		return errInvalid("Invalid address %s: It does not belong to any of this network's subnets", a)
	}
	if isNetworkOrBroadcast(spec.Subnet, a) || a == spec.Gateway || inUse[a] {
		return ErrAddressInUse
	}
	for _, aux := range spec.Aux {
		if aux == a {
			return ErrAddressInUse
		}
	}
	return nil
}

// isNetworkOrBroadcast: /31 and /32 have neither (RFC 3021), as in Docker.
func isNetworkOrBroadcast(subnet netip.Prefix, a netip.Addr) bool {
	if subnet.Addr().BitLen()-subnet.Bits() < 2 {
		return false
	}
	return a == subnet.Addr() || a == lastAddr(subnet)
}

// lastAddr is the highest address of p (the broadcast address for IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().As16()
	hostBits := p.Addr().BitLen() - p.Bits()
	for i := 15; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}
