#!/usr/bin/env bash
# Builds a Vagrant box (provider libvirt) of Debian 12 from Debian's packages
# alone: debootstrap into an ext4 image, extlinux as the boot loader, the
# vagrant user with Vagrant's insecure key. The packages netd and the lab
# checks need come with the box, so nothing is downloaded inside the VMs.
#
#   tools/vagrant/build-box.sh OUT.box      (root; needs debootstrap, extlinux, qemu-utils)
#
# The disk has no partition table: the whole disk is the root file system and
# extlinux's boot sector is its first sector. That needs neither loop
# partitions (absent from some kernels) nor a first boot to install GRUB.
set -euo pipefail

OUT=${1:?usage: build-box.sh OUT.box}
MIRROR=${NETD_BOX_MIRROR:-http://deb.debian.org/debian}
SUITE=${NETD_BOX_SUITE:-bookworm}
SIZE_GB=${NETD_BOX_SIZE_GB:-8}
CACHE=${NETD_BOX_CACHE:-$(dirname "$(realpath -m "$OUT")")/debcache}
VAGRANT_PUB=${VAGRANT_PUB:-$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1)}

# Runtime packages of netd and the lab checks (tools/vagrant/test.sh), plus
# what Vagrant needs: sshd, sudo, systemd-networkd (its network configuration
# on Debian), rsync for synced folders.
PKGS=linux-image-amd64,initramfs-tools,systemd,systemd-sysv,udev,dbus,kmod,procps,
PKGS+=openssh-server,sudo,rsync,less,ca-certificates,
PKGS+=iproute2,bpftool,nftables,tcpdump,iputils-ping,dnsutils,ethtool,netcat-openbsd

[ "$(id -u)" = 0 ] || { echo "build-box: run as root (debootstrap, mount)" >&2; exit 1; }
for c in debootstrap extlinux qemu-img mkfs.ext4; do
	command -v "$c" >/dev/null || { echo "build-box: $c not found (apt-get install debootstrap extlinux syslinux-common qemu-utils e2fsprogs)" >&2; exit 1; }
done
[ -r "$VAGRANT_PUB" ] || { echo "build-box: Vagrant's insecure public key not found (Debian's vagrant package ships it); set VAGRANT_PUB" >&2; exit 1; }

mkdir -p "$(dirname "$OUT")" "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/netd-box.XXXXXX")
ROOT=$WORK/root
cleanup() {
	for m in dev/pts dev proc sys; do mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"; done
	mountpoint -q "$ROOT" && umount "$ROOT"
	rm -rf "$WORK"
}
trap cleanup EXIT

start=$(date +%s)
truncate -s "${SIZE_GB}G" "$WORK/disk.raw"
# extlinux reads ext4 without the 64bit and metadata_csum features.
mkfs.ext4 -q -F -L netdroot -O ^64bit,^metadata_csum "$WORK/disk.raw"
mkdir "$ROOT"
mount -o loop "$WORK/disk.raw" "$ROOT"

echo "build-box: debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --cache-dir="$CACHE" --include="$PKGS" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
	{ tail -n 30 "$WORK/debootstrap.log" "$ROOT/debootstrap/debootstrap.log" 2>/dev/null; exit 1; }
echo "build-box: debootstrap done in $(($(date +%s) - start)) s"

mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

echo "netd-box" >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tnetd-box\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
echo "LABEL=netdroot / ext4 errors=remount-ro 0 1" >"$ROOT/etc/fstab"
echo "bpffs /sys/fs/bpf bpf defaults 0 0" >>"$ROOT/etc/fstab"
printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "$MIRROR" "$SUITE" >"$ROOT/etc/apt/sources.list.d/debian.sources"
: >"$ROOT/etc/apt/sources.list"

# DHCP on the first NIC (Vagrant's NAT/management network); Vagrant writes
# 50-vagrant-<if>.network for the private networks, which sort first.
cat >"$ROOT/etc/systemd/network/99-dhcp.network" <<'EOF'
[Match]
Name=eth* en*

[Network]
DHCP=ipv4
EOF
in_root systemctl enable systemd-networkd.service
# Not systemd-resolved: /etc/resolv.conf stays a plain file, the embedded DNS forwards to it.
: >"$ROOT/etc/resolv.conf"

# The vagrant user: Vagrant's insecure key (replaced on first `vagrant up`), passwordless sudo.
in_root useradd -m -s /bin/bash -U vagrant
echo 'vagrant:vagrant' | in_root chpasswd
install -d -m 0700 -o 1000 -g 1000 "$ROOT/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$VAGRANT_PUB" "$ROOT/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$ROOT/etc/sudoers.d/vagrant"
chmod 0440 "$ROOT/etc/sudoers.d/vagrant"
echo 'UseDNS no' >"$ROOT/etc/ssh/sshd_config.d/vagrant.conf"

# Every VM gets its own host keys and machine-id on its first boot.
rm -f "$ROOT"/etc/ssh/ssh_host_*
cat >"$ROOT/etc/systemd/system/ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate the SSH host keys of this machine
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
EOF
in_root systemctl enable ssh-hostkeys.service ssh.service
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"

# Boot: extlinux on the whole-disk file system, serial console for logs.
KVER=$(ls "$ROOT/lib/modules")
cp "$ROOT/boot/vmlinuz-$KVER" "$(dirname "$OUT")/vmlinuz"
mkdir -p "$ROOT/boot/extlinux"
cat >"$ROOT/boot/extlinux/extlinux.conf" <<'EOF'
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=netdroot ro net.ifnames=0 console=tty0 console=ttyS0,115200
EOF
extlinux --install "$ROOT/boot/extlinux" 2>&1 | grep -v '^$' || true
[ -e "$ROOT/vmlinuz" ] && [ -e "$ROOT/initrd.img" ] || { echo "build-box: /vmlinuz or /initrd.img missing in the image" >&2; exit 1; }

in_root apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/tmp/* "$ROOT"/var/log/*.log
for m in dev/pts dev proc sys; do umount "$ROOT/$m"; done
umount "$ROOT"

mkdir "$WORK/box"
qemu-img convert -O qcow2 "$WORK/disk.raw" "$WORK/box/box.img"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$SIZE_GB" >"$WORK/box/metadata.json"
tar -C "$WORK/box" -cf "$OUT.tmp" metadata.json box.img
mv "$OUT.tmp" "$OUT"
echo "build-box: $OUT ($(du -h "$OUT" | cut -f1), kernel $KVER) in $(($(date +%s) - start)) s"
