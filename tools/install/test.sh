#!/usr/bin/env bash
# make install into a scratch DESTDIR and check what a host gets: a static
# binary, a unit systemd-analyze verifies, a completion script bash loads
# and that completes, the config file; then make uninstall removes them.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(mktemp -d "${TMPDIR:-/tmp}/netd-install.XXXXXX")
trap 'rm -rf "$root"' EXIT
fail() { echo "install-test: $*" >&2; exit 1; }

make -s install DESTDIR="$root" >/dev/null
for f in usr/local/bin/netd etc/systemd/system/netd.service usr/share/bash-completion/completions/netd etc/netd/daemon.json; do
	[ -s "$root/$f" ] || fail "make install did not write /$f"
done
file "$root/usr/local/bin/netd" | grep -q 'statically linked' || fail "netd is not static: $(file "$root/usr/local/bin/netd")"

# systemd-analyze verify checks ExecStart paths and dependencies inside --root.
mkdir -p "$root/usr/lib/systemd" "$root/bin"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp /bin/sh "$root/bin/sh"
systemd-analyze verify --root="$root" /etc/systemd/system/netd.service || fail "systemd-analyze verify failed (above)"

# The completion script: loaded by bash, it asks netd for the subcommands.
words=$(PATH="$root/usr/local/bin:$PATH" bash -c '
	source "$1"
	COMP_WORDS=(netd net); COMP_CWORD=1; _netd_complete; echo "${COMPREPLY[*]}"
	COMP_WORDS=(netd container create --pub); COMP_CWORD=3; _netd_complete; echo "${COMPREPLY[*]}"
' _ "$root/usr/share/bash-completion/completions/netd")
[ "$words" = $'network\n--publish' ] || fail "completion gave \"$words\", want network and --publish"

# The unit's config file is one the daemon accepts: a key it does not know is refused.
echo '{"log-level": "info", "bogus": 1}' >"$root/bad.json"
if out=$("$root/usr/local/bin/netd" daemon --config "$root/bad.json" --socket "$root/x.sock" 2>&1); then fail "a bad config file was accepted"; fi
grep -q "don't match any configuration option: bogus" <<<"$out" || fail "bad config: $out"

make -s uninstall DESTDIR="$root" >/dev/null
for f in usr/local/bin/netd etc/systemd/system/netd.service usr/share/bash-completion/completions/netd; do
	[ ! -e "$root/$f" ] || fail "make uninstall left /$f"
done
[ -e "$root/etc/netd/daemon.json" ] || fail "make uninstall removed the config"
echo "install-test: install, systemd-analyze verify, completion and uninstall all fine"
