#!/usr/bin/env bash
# Provisions one Vagrant VM: packages, Go, netd built from /vagrant, and
# `netd daemon` as the systemd unit netd.service. Safe to run again.
set -euo pipefail

GO_VERSION=${GO_VERSION:-1.26.8}
NETD_NODE=${NETD_NODE:-$(hostname)}
SRC=${SRC:-/vagrant}

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends ca-certificates curl git make

if ! /usr/local/go/bin/go version 2>/dev/null | grep -q "go${GO_VERSION}"; then
  curl -fsSL "https://go.dev/dl/go${GO_VERSION}.linux-amd64.tar.gz" -o /tmp/go.tgz
  rm -rf /usr/local/go
  tar -C /usr/local -xzf /tmp/go.tgz
  rm /tmp/go.tgz
fi
export PATH=/usr/local/go/bin:$PATH
echo 'export PATH=/usr/local/go/bin:$PATH' >/etc/profile.d/go.sh

# The Makefile knows the package list; deps is idempotent.
make -C "$SRC" deps build
install -m 0755 "$SRC/bin/netd" /usr/local/bin/netd

# bpffs for the pinned maps and links that outlive a daemon restart.
if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
fi

cat >/etc/systemd/system/netd.service <<UNIT
[Unit]
Description=netd: Docker-style networks with an eBPF fast path
After=network-online.target
Wants=network-online.target

[Service]
Environment=NETD_NODE_NAME=${NETD_NODE}
ExecStart=/usr/local/bin/netd daemon --node-name ${NETD_NODE} --log-level info
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable netd.service
systemctl restart netd.service
for _ in $(seq 1 50); do
  if netd version >/dev/null 2>&1; then break; fi
  sleep 0.2
done
netd version
netd network ls
