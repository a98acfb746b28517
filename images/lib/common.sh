# Sourced by the image build scripts: pinned versions, cache layout, helpers.
# shellcheck shell=bash
set -euo pipefail
IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$IMAGES_DIR/.." && pwd)
set -a; . "$REPO_DIR/versions.env"; set +a
# Outside the work tree so a fresh clone (CI) on the same machine reuses it.
: "${CACHE:=${K2S_CACHE:-$HOME/.cache/k2s-dns}}"
export CACHE
mkdir -p "$CACHE/bin" "$CACHE/rootfs" "$CACHE/images"
export PATH="$REPO_DIR/bin:$PATH"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# debian_mirror: the Debian mirror this machine's apt already uses.
debian_mirror() {
  local uri
  uri=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
  [[ -n $uri ]] || uri=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
  echo "${uri:-http://deb.debian.org/debian}"
}

# rootfs NAME PACKAGES...: a cached Debian root filesystem tarball; prints its path.
rootfs() {
  local name=$1; shift
  local key; key=$(printf '%s\n' "$DEBIAN_SUITE" "$@" | sha256sum | cut -c1-12)
  local tar="$CACHE/rootfs/$name-$key.tar"
  if [[ ! -f $tar ]]; then
    command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
    local dir; dir=$(mktemp -d)
    log "debootstrap $name ($*)"
    local include; include=$(IFS=,; echo "$*")
    debootstrap --variant=minbase ${include:+--include="$include"} "$DEBIAN_SUITE" "$dir" "$(debian_mirror)" >"$CACHE/rootfs/$name.log" 2>&1 \
      || { tail -20 "$CACHE/rootfs/$name.log" >&2; rm -rf "$dir"; return 1; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$dir"
  fi
  echo "$tar"
}

# gobin NAME MODULE VERSION PACKAGE [go.mod lines...]: cached static Go binary; prints its path.
gobin() {
  "$IMAGES_DIR/go/build.sh" "$@" >&2
  echo "$CACHE/bin/$1-$3"
}

# import_image REF TARBALL [docker import --change ...]: a single-layer image from a
# filesystem tarball, saved as a docker-archive under $CACHE/images for kind.
import_image() {
  local ref=$1 tarball=$2; shift 2
  docker import "$@" "$tarball" "$ref" >/dev/null
  save_image "$ref"
}

save_image() {
  local ref=$1
  local out; out="$CACHE/images/$(echo "$ref" | tr '/:' '__').tar"
  docker save "$ref" -o "$out.tmp" && mv "$out.tmp" "$out"
  log "image $ref -> $out"
}

# static_tree DIR: a minimal filesystem for static binaries (non-root user 65532).
static_tree() {
  local dir=$1
  mkdir -p "$dir/etc" "$dir/tmp" "$dir/usr/local/bin" "$dir/etc/ssl/certs"
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/" 2>/dev/null || true
}
