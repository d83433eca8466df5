#!/usr/bin/env bash
# Provisions one lab VM (see the Vagrantfile): installs the netd binary the
# host built and copied to /tmp/netd-install, the systemd unit, the gossip
# key and /etc/netd/daemon.json (advertise on the underlay, join the first
# VM), and starts netd.service. Nothing is built or downloaded here: a box
# without the runtime packages gets them from its own mirror. Safe to run again.
set -euo pipefail

NETD_NODE=${NETD_NODE:?}
NETD_ADVERTISE=${NETD_ADVERTISE:?}
NETD_JOIN=${NETD_JOIN:-}
SRC=/tmp/netd-install

# Runtime packages: the local box has them; a public box may lack some.
missing=""
for c in ip:iproute2 nft:nftables bpftool:bpftool tcpdump:tcpdump ping:iputils-ping; do
	command -v "${c%%:*}" >/dev/null || missing+=" ${c#*:}"
done
if [ -n "$missing" ]; then
	echo "provision: installing$missing from the box's mirror"
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

install -D -m 0755 "$SRC/netd" /usr/local/bin/netd
install -D -m 0644 "$SRC/netd.service" /etc/systemd/system/netd.service
sed -i 's|@BINDIR@|/usr/local/bin|g' /etc/systemd/system/netd.service
install -d -m 0700 /etc/netd
install -m 0600 "$SRC/gossip.key" /etc/netd/gossip.key
install -d /usr/share/bash-completion/completions
/usr/local/bin/netd completion bash >/usr/share/bash-completion/completions/netd
getent group netd >/dev/null || groupadd --system netd
usermod -a -G netd vagrant 2>/dev/null || true

# The underlay address is the private network's: every VM's NAT address is the same.
join=""
[ -z "$NETD_JOIN" ] || join=", \"join\": [\"$NETD_JOIN\"]"
cat >/etc/netd/daemon.json <<JSON
{
  "node-name": "$NETD_NODE",
  "advertise-addr": "$NETD_ADVERTISE"$join,
  "gossip-key-file": "/etc/netd/gossip.key",
  "log-level": "info"
}
JSON

systemctl daemon-reload
systemctl enable netd.service
systemctl restart netd.service
for _ in $(seq 1 100); do
	netd version >/dev/null 2>&1 && break
	sleep 0.2
done
netd version
echo "provision: $NETD_NODE runs netd on $NETD_ADVERTISE (kernel $(uname -r))"
