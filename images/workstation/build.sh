#!/usr/bin/env bash
# k2s-dns.local/workstation:$DEBIAN_SUITE: a Linux workstation as README's "From the workstation" section
# assumes one, booted in a container: systemd as PID 1 with systemd-resolved (and nss-resolve, so
# getaddrinfo asks it). tests/e2e/test_85_workstation.py runs README's resolvectl commands in it against
# the kind cluster's CoreDNS. Only e2e uses it; it is not a product image.
# resolved gets no upstream server of its own (no DNS=, an empty FallbackDNS=, no LLMNR/mDNS), so a name
# outside a routing domain goes nowhere: never to the machine's (off-box) resolver.
. "$(dirname "$0")/../lib/common.sh"
ref="k2s-dns.local/workstation:$DEBIAN_SUITE"
if docker image inspect "$ref" >/dev/null 2>&1 && [[ -z ${REBUILD:-} ]]; then log "$ref present"; exit 0; fi
base=$(rootfs workstation systemd systemd-sysv systemd-resolved libnss-resolve dbus iproute2)
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$base"
mkdir -p "$root/etc/systemd/resolved.conf.d"
printf '[Resolve]\nDNS=\nFallbackDNS=\nLLMNR=no\nMulticastDNS=no\nDNSStubListener=yes\n' \
  >"$root/etc/systemd/resolved.conf.d/k2s-dns-e2e.conf"
# Units a container has no use for (and that fail in one).
rm -f "$root"/lib/systemd/system/multi-user.target.wants/getty.target \
  "$root"/lib/systemd/system/sysinit.target.wants/systemd-udev* "$root"/etc/systemd/system/getty.target.wants/*
chroot "$root" systemctl enable systemd-resolved.service >/dev/null 2>&1 || true
ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
tar -C "$root" -c . | docker import --change 'ENV container=docker' --change 'ENTRYPOINT ["/sbin/init"]' - "$ref" >/dev/null
log "built $ref"
