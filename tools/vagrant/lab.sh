#!/usr/bin/env bash
# make vagrant-test: the Vagrant lab booted and checked on this machine,
# offline, without touching the root network namespace.
#
# libvirtd and virtlogd run in a lab network namespace of their own (their
# bridges, dnsmasq and NAT rules stay there), with qemu as root (a private
# mount of qemu.conf: with /dev/kvm root-only libvirt would otherwise
# re-probe qemu on nearly every call) and vagrant talks to them from the same
# namespace. The box is the local one (make vagrant-box). Then, on the VMs:
# 3 alive nodes in `netd node ls` everywhere, an overlay network per
# dataplane created on VM 1 and seen on all, a container per VM on each, a
# full ping matrix, VXLAN on the underlay seen by tcpdump, and after
# `vagrant destroy` no domain, network or volume left and the root
# namespace as before.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

BOX_FILE=${NETD_BOX_FILE:-/var/tmp/netd-vagrant/netd-bookworm.box}
BOX_NAME=netd-local/bookworm
N=${NETD_VMS:-3}
NS=ndv$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
WORK=$(mktemp -d "${TMPDIR:-/tmp}/netd-vagrant.XXXXXX")
NETD_BIN=${NETD_BIN:-$REPO/bin/netd}
T0=$SECONDS
say() { printf '[vagrant-test %4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (libvirtd, network namespaces)"
for c in vagrant libvirtd virtlogd virsh qemu-system-x86_64 ssh; do
	command -v "$c" >/dev/null || fail "$c not found (make vagrant-deps installs vagrant, vagrant-libvirt, libvirt and qemu)"
done
vagrant plugin list 2>/dev/null | grep -q vagrant-libvirt || fail "the vagrant-libvirt plugin is missing (apt-get install vagrant-libvirt)"
[ -s "$BOX_FILE" ] || fail "no box at $BOX_FILE: make vagrant-box builds it"
[ -x "$NETD_BIN" ] || fail "no netd binary at $NETD_BIN: make build"
file "$NETD_BIN" | grep -q 'statically linked' || fail "$NETD_BIN is not static (make build makes it so)"
if pgrep -x libvirtd >/dev/null || { [ -d /run/systemd/system ] && systemctl -q is-active libvirtd.socket 2>/dev/null; }; then
	fail "a libvirtd (or its systemd socket) already runs on this machine: stop it first (systemctl disable --now libvirtd.service libvirtd.socket), this test starts its own in a lab namespace"
fi
# A socket file nobody serves is what a killed run of this test leaves.
for f in /run/libvirt/libvirt-sock /run/libvirt/libvirt-sock-ro /run/libvirt/libvirt-admin-sock; do
	[ -S "$f" ] && rm -f "$f"
done

# What the root network namespace looks like; it must look the same after.
root_state() {
	ip -d -o link show | sed -E 's/ (link-netnsid|alias) [^ ]+//g; s/ +(qdisc|state|group|qlen) [^ ]+//g'
	ip -o addr show
	ip route show table all
	ip rule show
	nft list ruleset 2>/dev/null
	sysctl -a 2>/dev/null | grep -E '^net\.(ipv4\.(ip_forward|conf\.(all|default)\.)|ipv6\.conf\.(all|default)\.(forwarding|disable_ipv6))' | sort
}
root_state >"$WORK/root.before"

export VAGRANT_HOME=$WORK/vagrant.d VAGRANT_DOTFILE_PATH=$WORK/dot VAGRANT_CHECKPOINT_DISABLE=1 \
	VAGRANT_DEFAULT_PROVIDER=libvirt LIBVIRT_DEFAULT_URI=qemu:///system \
	NETD_BOX=$BOX_NAME NETD_VMS=$N NETD_BIN NETD_VM_CONSOLE_DIR=$WORK
in_ns() { nsenter --net=/run/netns/"$NS" -- "$@"; }
vg() { in_ns vagrant "$@"; }

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	say "cleaning up (exit $rc)"
	if [ -e /run/netns/"$NS" ]; then
		(cd "$REPO" && timeout 300 nsenter --net=/run/netns/"$NS" -- vagrant destroy -f >"$WORK/destroy.log" 2>&1) ||
			say "vagrant destroy failed: $(tail -n 5 "$WORK/destroy.log")"
		if [ -S /run/libvirt/libvirt-sock ]; then
			for d in $(virsh list --all --name 2>/dev/null | grep "^netd_" || true); do
				virsh destroy "$d" >/dev/null 2>&1 || true
				virsh undefine "$d" --remove-all-storage >/dev/null 2>&1 || true
			done
			for n in netd-underlay netd-mgmt; do
				virsh net-destroy "$n" >/dev/null 2>&1 || true
				virsh net-undefine "$n" >/dev/null 2>&1 || true
			done
			for v in $(virsh vol-list default 2>/dev/null | awk '/netd-local/ {print $1}'); do
				virsh vol-delete --pool default "$v" >/dev/null 2>&1 || true
			done
			if [ "${pool_before:-yes}" = no ]; then
				virsh pool-destroy default >/dev/null 2>&1 || true
				virsh pool-undefine default >/dev/null 2>&1 || true
			fi
			left=$(virsh list --all --name | grep -c . || true)
			[ "$left" = 0 ] || say "warning: $left libvirt domain(s) left"
		fi
	fi
	for p in libvirtd virtlogd; do
		[ -s "$WORK/$p.pid" ] && kill "$(cat "$WORK/$p.pid")" 2>/dev/null || true
	done
	for _ in $(seq 50); do pgrep -x libvirtd >/dev/null || pgrep -x virtlogd >/dev/null || break; sleep 0.2; done
	if [ -e /run/netns/"$NS" ]; then
		# Whatever still runs in the lab namespace (dnsmasq, a stuck qemu) goes with it.
		for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
		ip netns del "$NS" 2>/dev/null || true
	fi
	if [ -s "$WORK/root.before" ]; then
		root_state >"$WORK/root.after"
		if ! diff -u "$WORK/root.before" "$WORK/root.after" >"$WORK/root.diff"; then
			say "the root network namespace changed:"; cat "$WORK/root.diff"; rc=1
		else
			say "root network namespace unchanged"
		fi
	fi
	if [ "$rc" != 0 ] && [ -n "${KEEP_LOGS:-}" ]; then
		cp -a "$WORK" "$KEEP_LOGS" && say "logs kept in $KEEP_LOGS"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The eBPF packages' tests, built here to run on the VMs' kernel too.
TEST_PKGS="dataplane/fastpath dataplane/publish dataplane/bridge overlay/fastpath"
for p in $TEST_PKGS; do
	d=$WORK/tests/${p//\//_}
	mkdir -p "$d"
	CGO_ENABLED=0 go test -c -o "$d/pkg.test" "./$p" || fail "go test -c ./$p"
	[ -d "$p/testdata" ] && cp -a "$p/testdata" "$d/"
done

ip netns add "$NS"
ip -n "$NS" link set lo up
# libvirt's own qemu.conf with qemu as root, seen by libvirtd alone.
cp /etc/libvirt/qemu.conf "$WORK/qemu.conf"
printf '\nuser = "root"\ngroup = "root"\n' >>"$WORK/qemu.conf"
say "starting virtlogd and libvirtd in netns $NS"
in_ns virtlogd -d -p "$WORK/virtlogd.pid"
unshare --mount --propagation slave -- sh -c '
	mount --bind "$1/qemu.conf" /etc/libvirt/qemu.conf &&
	exec nsenter --net=/run/netns/"$2" -- libvirtd -d -p "$1/libvirtd.pid"' _ "$WORK" "$NS"
for _ in $(seq 100); do virsh version >/dev/null 2>&1 && break; sleep 0.2; done
virsh version >/dev/null || fail "libvirtd did not come up"

pool_before=$(virsh pool-info default >/dev/null 2>&1 && echo yes || echo no)
say "adding the box $BOX_FILE"
vg box add --name "$BOX_NAME" "$BOX_FILE" >"$WORK/box-add.log" 2>&1 || fail "vagrant box add: $(tail -n 5 "$WORK/box-add.log")"
# The Vagrantfile's choice, for the log: kvm only where a stock kernel boots.
accel=tcg
if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
say "vagrant up ($N VMs, ${NETD_VM_ACCEL:-$accel})"
t_up=$SECONDS
if ! vg up --provider libvirt >"$WORK/up.log" 2>&1; then
	tail -n 40 "$WORK/up.log"
	for c in "$WORK"/*.console.log; do [ -f "$c" ] && { echo "--- $c"; tail -n 20 "$c"; }; done
	fail "vagrant up"
fi
UP_S=$((SECONDS - t_up))
say "vagrant up took ${UP_S}s"

vg ssh-config >"$WORK/ssh_config" 2>/dev/null
# on VM CMD...: CMD as root on the VM, each word quoted for the remote shell.
on() { local vm=$1; shift; in_ns ssh -F "$WORK/ssh_config" -o LogLevel=ERROR "$vm" -- "sudo $(printf '%q ' "$@")"; }

for i in $(seq "$N"); do
	say "netd$i: kernel $(on netd$i uname -r | tr -d '\r')"
done


# alive_everywhere waits until every VM's netd lists N alive nodes.
alive_everywhere() {
	for i in $(seq "$N"); do
		ok=""
		for _ in $(seq 60); do
			alive=$(on netd$i netd node ls 2>/dev/null | grep -c -w alive || true)
			[ "$alive" = "$N" ] && { ok=1; break; }
			sleep 1
		done
		[ -n "$ok" ] || { on netd$i netd node ls || true; on netd$i journalctl -u netd -n 30 --no-pager || true; fail "netd$i does not see $N alive nodes"; }
	done
}

say "gossip: waiting for $N alive nodes on every VM"
alive_everywhere
on netd1 netd node ls

# An overlay's dataplane is each host's (netd daemon --dataplane): the VMs
# run ebpf first, then all switch to kernel (daemon.json, restart).
sub=50
for dp in ebpf kernel; do
	if [ "$dp" = kernel ]; then
		for i in $(seq "$N"); do
			on netd$i sh -s <<-'EOS'
				sed -i '1a\  "dataplane": "kernel",' /etc/netd/daemon.json && systemctl restart netd
			EOS
		done
		alive_everywhere
	fi
	for i in $(seq "$N"); do
		got=$(on netd$i netd version 2>/dev/null | awk '/Dataplane:/ {print $2}' | tr -d '\r')
		[ "$got" = "$dp" ] || fail "netd$i runs dataplane '$got', want $dp"
	done
	net=ov-$dp
	say "overlay $net (dataplane $dp on every VM) created on netd1"
	on netd1 netd network create -d overlay --subnet 10.$sub.0.0/24 "$net" >/dev/null
	for i in $(seq 2 "$N"); do
		ok=""
		for _ in $(seq 30); do on netd$i netd network inspect "$net" >/dev/null 2>&1 && { ok=1; break; }; sleep 1; done
		[ -n "$ok" ] || fail "$net did not reach netd$i"
	done
	declare -A ip=()
	for i in $(seq "$N"); do
		on netd$i netd container create --network "$net" "c$i-$dp" >/dev/null
		ip[$i]=$(on netd$i netd container inspect --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "c$i-$dp" | tr -d '\r')
	done
	for i in $(seq "$N"); do
		for j in $(seq "$N"); do
			[ "$i" = "$j" ] && continue
			good=""
			for _ in 1 2 3 4 5; do
				on netd$i netd container exec "c$i-$dp" -- ping -c 2 -W 2 -i 0.3 "${ip[$j]}" >/dev/null 2>&1 && { good=1; break; }
				sleep 1
			done
			[ -n "$good" ] || fail "$dp: ping from c$i-$dp (netd$i) to ${ip[$j]} (netd$j) failed"
		done
	done
	say "$dp: ping matrix of $N containers passed"
	# VXLAN on netd2's underlay while c1 pings c2.
	on netd1 netd container exec "c1-$dp" -- ping -c 8 -i 0.5 "${ip[2]}" >/dev/null 2>&1 &
	seen=$(on netd2 timeout 10 tcpdump -ni eth1 -c 2 "udp port 4789" 2>/dev/null | grep -c "VXLAN" || true)
	wait || true
	[ "$seen" -ge 1 ] || fail "$dp: tcpdump on netd2's eth1 saw no VXLAN"
	say "$dp: tcpdump on netd2's underlay (eth1) sees the VXLAN"
	# One host's overlays share its VXLAN port, so they share a dataplane:
	# this network goes before the hosts switch.
	for i in $(seq "$N"); do on netd$i netd container rm "c$i-$dp" >/dev/null; done
	on netd1 netd network rm "$net" >/dev/null
	for i in $(seq "$N"); do
		gone=""
		for _ in $(seq 30); do on netd$i netd network inspect "$net" >/dev/null 2>&1 || { gone=1; break; }; sleep 1; done
		[ -n "$gone" ] || fail "$net still on netd$i after network rm on netd1"
	done
	sub=$((sub + 1))
done

# The bridge on the VMs' kernel (6.1: no TCX, so TC clsact) on both
# dataplanes, and a published port reached from another VM, which the
# container sees with that VM's own address.
port=8080
for dp in ebpf kernel; do
	on netd1 netd network create -o netd.dataplane=$dp --subnet 10.$sub.0.0/24 "br-$dp" >/dev/null
	on netd1 netd container create --network "br-$dp" -p $port:80 "b1-$dp" >/dev/null
	on netd1 netd container create --network "br-$dp" "b2-$dp" >/dev/null
	b1=$(on netd1 netd container inspect --format "{{(index .NetworkSettings.Networks \"br-$dp\").IPAddress}}" "b1-$dp" | tr -d '\r')
	on netd1 netd container exec "b2-$dp" -- ping -c 2 -W 2 -i 0.3 "$b1" >/dev/null || fail "$dp bridge: ping b2 -> b1 on netd1"
	on netd1 timeout 20 netd container exec "b1-$dp" -- nc -n -v -l -p 80 -w 3 >"$WORK/srv-$dp.log" 2>&1 &
	srv=$!
	sleep 2
	on netd2 sh -c "echo hello-$dp | nc -w 3 192.168.56.11 $port" >/dev/null 2>&1 || true
	wait "$srv" || true
	grep -q "hello-$dp" "$WORK/srv-$dp.log" || fail "$dp bridge: netd2 -> netd1:$port did not reach b1: $(cat "$WORK/srv-$dp.log")"
	grep -q "192.168.56.12" "$WORK/srv-$dp.log" || fail "$dp bridge: b1 did not see netd2's address: $(cat "$WORK/srv-$dp.log")"
	say "$dp bridge on $(on netd1 uname -r | tr -d '\r'): ping, and -p $port:80 from netd2 seen as 192.168.56.12"
	sub=$((sub + 1)); port=$((port + 1))
done
on netd1 netd dataplane show >"$WORK/dataplane-show.txt" 2>&1 || true
grep -qi "tc\|clsact" "$WORK/dataplane-show.txt" && say "netd1 dataplane show: $(grep -i -m1 'attach\|tc' "$WORK/dataplane-show.txt" | tr -s ' ')"

# Every eBPF program loads and passes its BPF_PROG_TEST_RUN and namespace
# tests on the VMs' kernel (6.1: TC clsact instead of TCX, no netkit).
in_ns scp -F "$WORK/ssh_config" -o LogLevel=ERROR -q -r "$WORK/tests" netd1:/tmp/netd-tests
for p in $TEST_PKGS; do
	d=${p//\//_}
	t_pkg=$SECONDS
	if ! on netd1 sh -c "cd /tmp/netd-tests/$d && ./pkg.test -test.v -test.timeout 8m >/tmp/netd-tests/$d.log 2>&1"; then
		on netd1 sh -c "grep -E -B2 -A8 '^(--- FAIL|panic)' /tmp/netd-tests/$d.log | head -60" || true
		fail "go test ./$p failed on netd1's kernel"
	fi
	say "go test ./$p passed on netd1 ($(on netd1 uname -r | tr -d '\r'), $((SECONDS - t_pkg))s; $(on netd1 grep -c -- '--- SKIP' /tmp/netd-tests/$d.log | tr -d '\r') skipped)"
done

say "vagrant destroy"
vg destroy -f >"$WORK/destroy.log" 2>&1 || fail "vagrant destroy: $(tail -n 5 "$WORK/destroy.log")"
left=$(virsh list --all --name | grep -c . || true)
[ "$left" = 0 ] || fail "$left libvirt domain(s) left after vagrant destroy"
say "passed: vagrant up ${UP_S}s, total $((SECONDS - T0))s"
