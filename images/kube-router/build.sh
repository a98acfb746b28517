#!/usr/bin/env bash
# docker.io/cloudnativelabs/kube-router:$KUBE_ROUTER_VERSION (upstream's name and release tag) from
# github.com/cloudnativelabs/kube-router/v2: the test cluster's CNI (BGP router: pod routes between the kind
# nodes) and NetworkPolicy engine (iptables + ipset). Upstream's image is Alpine with iptables-wrapper
# choosing legacy or nft; here it is Debian $DEBIAN_SUITE with iptables' default nft backend, the same
# iptables as the kube-proxy image (images/kubernetes/build-images.sh), so both program nf_tables.
# Upstream's extras are left out: ipvsadm/conntrack (service proxy, not run here), the gobgp CLI, curl,
# and the CNI plugins + cni-install (the node image ships Debian's bridge/host-local/loopback/portmap).
#
# Security: v2.1.0's go.mod pins versions with published advisories. The build copies the module, `go get`s
# the exact versions in KUBE_ROUTER_GO_BUMPS (versions.env lists each bump from -> to and why):
#   golang.org/x/net v0.21.0 -> v0.62.0, x/text v0.14.0 -> v0.44.0, x/sys v0.17.0 -> v0.50.0,
#   x/oauth2 v0.17.0 -> v0.38.0, x/crypto v0.19.0 -> v0.59.0, grpc v1.62.0 -> v1.85.0,
#   protobuf v1.32.0 -> v1.36.12, docker/docker v25.0.3 -> v28.5.2+incompatible (+ the four modules its
#   client imports without declaring them, at moby v28.5.2's vendor.mod versions, and otel's auto/sdk),
#   gobgp/v3 v3.23.0 -> v3.37.0, k8s.io/{api,apimachinery,client-go,cri-api} v0.29.2 -> v0.29.15,
#   netlink v1.2.1-beta.2 -> v1.3.1, netns v0.0.4 -> v0.0.5
# and builds with the machine's Go toolchain (stdlib fixes). `go get` runs minimal version selection, so
# other modules move only as far as these require (otel, x/term, x/tools, ...); the script fails if any
# listed module ends up at another version than listed, and every checksum is checked against
# sum.golang.org. kube-router's own source is unchanged: it compiles against these versions as is.
# The binary cache key covers the bumps and the Go version, and the image carries that key as a label:
# a changed bump list or toolchain rebuilds both (REBUILD=1 forces the image).
. "$(dirname "$0")/../lib/common.sh"
module=github.com/cloudnativelabs/kube-router/v2
version=$KUBE_ROUTER_VERSION
ref="docker.io/cloudnativelabs/kube-router:$version"
IFS=, read -ra bumps <<<"$KUBE_ROUTER_GO_BUMPS"
key=$(printf '%s\n' "$version" "$(go env GOVERSION)" "${bumps[@]}" | sha256sum | cut -c1-12)
if [[ -z ${REBUILD:-} ]] && [[ $(docker image inspect -f '{{index .Config.Labels "k2s-dns.build"}}' "$ref" 2>/dev/null) == "$key" ]]; then
  log "$ref present"; exit 0
fi
start=$SECONDS
bin="$CACHE/bin/kube-router-$version-$key"
work=$(mktemp -d); trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
if [[ ! -x $bin ]]; then
  export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
  dir=$(cd "$work" && go mod download -json "$module@$version" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d.get("Error")) if d.get("Error") else print(d["Dir"])')
  cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
  cd "$work/src"
  log "kube-router $version: go get ${#bumps[@]} pinned module versions ($(go env GOVERSION))"
  go get "${bumps[@]}" 2>"$work/get.log" || { cat "$work/get.log" >&2; exit 1; }
  grep -v '^go: downloading' "$work/get.log" >&2 || true
  want=$(printf '%s\n' "${bumps[@]}" | tr @ ' ' | sort)
  got=$(go list -mod=readonly -m -f '{{.Path}} {{.Version}}' "${bumps[@]%@*}" | sort)
  if [[ $want != "$got" ]]; then
    log "module versions differ from KUBE_ROUTER_GO_BUMPS:"; diff <(echo "$want") <(echo "$got") >&2; exit 1
  fi
  log "building $module/cmd/kube-router -> $bin"
  # Upstream's Makefile sets these two (Version from `git describe --tags`), printed by --version.
  pkgv=$module/pkg/version
  go build -mod=readonly -trimpath \
    -ldflags "-s -w -X $pkgv.Version=$version -X $pkgv.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%S%z)" \
    -o "$bin.tmp" ./cmd/kube-router
  mv "$bin.tmp" "$bin"
  cd - >/dev/null
  log "built kube-router $version in $((SECONDS - start))s"
fi
# iptables (nft backend by Debian's alternatives default; ip6tables too), ipset, iproute2 (`ip`, which
# kube-router runs for tunnels and policy routing), kmod (its `modprobe br_netfilter`); bash from minbase.
base=$(rootfs kube-router iptables ipset iproute2 kmod)
root="$work/rootfs"; mkdir -p "$root"
tar -C "$root" -xf "$base"
# Documentation and translations only; the dpkg database stays, so image scanners see the package versions.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/var/cache/debconf/*-old "$root"/var/log/*
[[ $(readlink "$root/etc/alternatives/iptables") == /usr/sbin/iptables-nft ]] || { log "$base: iptables is not iptables-nft"; exit 1; }
install -m 0755 "$bin" "$root/usr/local/bin/kube-router"
mkdir -p "$root/var/lib/kube-router"
tar -C "$root" -c . | import_image "$ref" - \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'WORKDIR /root' --change "LABEL k2s-dns.build=$key" \
  --change 'ENTRYPOINT ["/usr/local/bin/kube-router"]'
log "kube-router image done in $((SECONDS - start))s"
