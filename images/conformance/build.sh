#!/usr/bin/env bash
# The Kubernetes DNS conformance tests, air-gapped (tests/conformance/run.sh runs them):
#   - $CACHE/conformance-$KUBERNETES_VERSION/e2e.test: `go test -c k8s.io/kubernetes/test/e2e` at
#     $KUBERNETES_VERSION, through the same wrapper module (staging modules pinned to
#     $KUBERNETES_STAGING_VERSION) and build flags as the node's Kubernetes binaries
#     (images/kubernetes/build-binaries.sh), so every package they share comes from the Go build cache;
#   - the two images the 8 `[sig-network] DNS ... [Conformance]` specs run, under the upstream names and
#     tags that e2e.test expects (test/utils/image/manifest.go of that version; checked below, and against
#     the built binary's --list-images):
#       registry.k8s.io/e2e-test-images/agnhost:$AGNHOST_VERSION
#         /agnhost built from k8s.io/kubernetes/test/images/agnhost (static), on a Debian root fs with dig:
#         the specs run their shell probes (dig, getent, seq) in agnhost containers too (upstream's image is
#         Alpine + bind-tools); without upstream's /coredns, which only non-conformance DNS specs use;
#       registry.k8s.io/e2e-test-images/jessie-dnsutils:$JESSIE_DNSUTILS_TAG
#         the same Debian root fs ($DEBIAN_SUITE, dnsutils, bash, coreutils; upstream's is jessie + dnsutils).
#     Nothing else: the specs' pods use these two plus the sandbox image (pause, already in the node image).
# Each image is saved to $CACHE/images for `kind load`. Cached steps are skipped (REBUILD=1 rebuilds images).
#   images/conformance/build.sh [e2e|images]     (default: both)
. "$(dirname "$0")/../lib/common.sh"
what=${1:-all}
out_dir="$CACHE/conformance-$KUBERNETES_VERSION"
e2e_test="$out_dir/e2e.test"
agnhost_ref="registry.k8s.io/e2e-test-images/agnhost:$AGNHOST_VERSION"
jessie_ref="registry.k8s.io/e2e-test-images/jessie-dnsutils:$JESSIE_DNSUTILS_TAG"
mkdir -p "$out_dir"

k8s_json=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION")
k8s_src=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])' <<<"$k8s_json")
k8s_mod=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])' <<<"$k8s_json")

# The tags this e2e.test asks for, read from its own image manifest: refuse to build under other ones.
manifest_tag() {
  sed -nE "s/^[[:space:]]*configs\[$1\] = Config\{list\.PromoterE2eRegistry, \"[^\"]+\", \"([^\"]+)\"\}.*/\1/p" \
    "$k8s_src/test/utils/image/manifest.go"
}
for pair in "Agnhost AGNHOST_VERSION $AGNHOST_VERSION" "JessieDnsutils JESSIE_DNSUTILS_TAG $JESSIE_DNSUTILS_TAG"; do
  read -r id var pinned <<<"$pair"
  want=$(manifest_tag "$id")
  if [[ $want != "$pinned" ]]; then
    log "versions.env: $var=$pinned, but e2e.test $KUBERNETES_VERSION expects tag '${want:-?}' ($id in test/utils/image/manifest.go)"
    exit 1
  fi
done
if [[ $(cat "$k8s_src/test/images/agnhost/VERSION") != "$AGNHOST_VERSION" ]]; then
  log "test/images/agnhost/VERSION of k8s.io/kubernetes $KUBERNETES_VERSION is not $AGNHOST_VERSION"; exit 1
fi

# The wrapper module's go.mod lines, exactly as build-binaries.sh makes them (same module graph, same cache).
replaces=()
while read -r staging; do
  replaces+=("replace $staging => $staging $KUBERNETES_STAGING_VERSION")
done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$k8s_mod")
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
version_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build_e2e() {
  if [[ -x $e2e_test ]]; then log "cached: $e2e_test"; return; fi
  local work; work=$(mktemp -d)
  {
    echo "module k2s-dns.local/build/e2e.test"
    echo "go 1.24"
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    printf '%s\n' "${replaces[@]}"
  } >"$work/go.mod"
  log "building e2e.test: go test -c k8s.io/kubernetes/test/e2e@$KUBERNETES_VERSION -> $e2e_test (cold: many minutes)"
  local start=$SECONDS
  if ! (
    cd "$work"
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes/test/e2e@$KUBERNETES_VERSION" >/dev/null 2>&1 ||
      GOFLAGS=-mod=mod go mod download k8s.io/kubernetes
    # -trimpath and CGO_ENABLED=0 as the node's binaries: their shared packages are cache hits.
    CGO_ENABLED=0 GOFLAGS=-mod=mod go test -c -vet=off -trimpath -ldflags "-s -w $version_ldflags" \
      -o "$e2e_test.tmp" k8s.io/kubernetes/test/e2e
  ); then
    rm -rf "$work"; log "e2e.test build failed"; return 1
  fi
  rm -rf "$work"
  mv "$e2e_test.tmp" "$e2e_test"
  log "built e2e.test in $((SECONDS - start))s ($(du -m "$e2e_test" | cut -f1) MB)"
}

# The tags e2e.test itself reports (--list-images exits before it needs a cluster).
check_e2e_images() {
  local listed; listed=$("$e2e_test" --list-images 2>/dev/null)
  for ref in "$agnhost_ref" "$jessie_ref"; do
    grep -qxF "$ref" <<<"$listed" || { log "e2e.test --list-images does not name $ref"; return 1; }
  done
  log "e2e.test --list-images names $agnhost_ref and $jessie_ref"
}

have_image() { docker image inspect "$1" >/dev/null 2>&1 && [[ -z ${REBUILD:-} ]]; }

build_images() {
  if have_image "$jessie_ref" && have_image "$agnhost_ref"; then log "$jessie_ref and $agnhost_ref present"; return; fi
  "$IMAGES_DIR/engine/docker.sh" up >&2
  local start=$SECONDS base dir agnhost
  # One root fs for both images: dig (dnsutils) with bash, coreutils (seq, test) and glibc's getent;
  # without locales, docs and man pages (50 of its 180 MB).
  base=$(rootfs conformance-dnsutils dnsutils bash coreutils)
  dir=$(mktemp -d)
  tar -C "$dir" -xf "$base"
  rm -rf "$dir"/usr/share/locale/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/*
  tar -C "$dir" -c . | import_image "$jessie_ref" - \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  log "built $jessie_ref in $((SECONDS - start))s"
  start=$SECONDS
  agnhost=$(gobin agnhost k8s.io/kubernetes "$KUBERNETES_VERSION" k8s.io/kubernetes/test/images/agnhost "${replaces[@]}")
  install -m 0755 "$agnhost" "$dir/agnhost"
  ln -s agnhost "$dir/agnhost-2"
  mkdir -p "$dir/uploads"
  # porter's TLS files, as upstream's Dockerfile adds them.
  cp "$k8s_src/test/images/agnhost/porter/localhost.crt" "$k8s_src/test/images/agnhost/porter/localhost.key" "$dir/"
  chmod 0644 "$dir/localhost.crt" "$dir/localhost.key"
  # The user and group upstream's image defines (a SupplementalGroups spec looks them up).
  echo 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh' >>"$dir/etc/passwd"
  echo 'user-defined-in-image:x:1000:' >>"$dir/etc/group"
  echo 'group-defined-in-image:x:50000:user-defined-in-image' >>"$dir/etc/group"
  # Upstream's image also carries a /coredns binary for non-conformance DNS specs; left out (75 MB).
  tar -C "$dir" -c . | import_image "$agnhost_ref" - \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /' --change 'ENTRYPOINT ["/agnhost"]' --change 'CMD ["pause"]'
  rm -rf "$dir"
  log "built $agnhost_ref in $((SECONDS - start))s"
}

case $what in
e2e) build_e2e; check_e2e_images ;;
images) build_images ;;
all) build_images; build_e2e; check_e2e_images ;;
*) echo "usage: $0 [e2e|images]" >&2; exit 2 ;;
esac
