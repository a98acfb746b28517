#!/usr/bin/env bash
# $MUSL_CLIENT_IMAGE (k2s-dns.local/musl-client:$DEBIAN_SUITE): this folder's resolve.c, linked statically
# against Debian's musl (musl-tools), so the e2e suite's DNS checks run through musl's stub resolver next
# to glibc's. Only e2e uses it; it is not a product image, and the name is a local one.
# The image carries a hash of resolve.c, this script and DEBIAN_SUITE as a label: an edit rebuilds it
# (REBUILD=1 forces it).
. "$(dirname "$0")/../lib/common.sh"
ref=$MUSL_CLIENT_IMAGE
[[ ${ref##*:} == "$DEBIAN_SUITE" ]] || { log "MUSL_CLIENT_IMAGE ($ref) must be tagged DEBIAN_SUITE ($DEBIAN_SUITE)"; exit 1; }
here="$IMAGES_DIR/musl-client"
key=$(cat "$here/resolve.c" "$here/build.sh" <(echo "$DEBIAN_SUITE") | sha256sum | cut -c1-12)
if [[ -z ${REBUILD:-} ]] && [[ $(docker image inspect -f '{{index .Config.Labels "k2s-dns.build"}}' "$ref" 2>/dev/null) == "$key" ]]; then
  log "$ref present"; exit 0
fi
command -v musl-gcc >/dev/null || { apt-get update -qq; apt-get install -y -qq musl-tools >/dev/null; }
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
static_tree "$dir"
musl-gcc -static -O2 -s -Wall -Wextra -Werror -o "$dir/resolve" "$here/resolve.c"
# musl's MIT licence asks for its notice next to the binary it is linked into.
mkdir -p "$dir/usr/share/doc/musl" && cp /usr/share/doc/musl/copyright "$dir/usr/share/doc/musl/"
# Non-root so the pod passes restricted Pod Security; /etc/resolv.conf and /etc/hosts come from the runtime.
tar -C "$dir" -c . | import_image "$ref" - --change "LABEL k2s-dns.build=$key" \
  --change 'ENTRYPOINT ["/resolve"]' --change 'CMD ["sleep"]' --change 'USER 65532:65532'
