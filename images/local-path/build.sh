#!/usr/bin/env bash
# The two images tests/cluster/local-path-storage.yaml runs (the kind test cluster's default StorageClass):
#   docker.io/rancher/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION  from github.com/rancher/local-path-provisioner
#   $LOCAL_PATH_HELPER_IMAGE (k2s-dns.local/local-path-helper:$DEBIAN_SUITE)  the helper pod's shell: Debian's
#     busybox-static, under a name of this project's (the image is not upstream's)
# Each is skipped when docker already has it and its archive is in $CACHE/images.
# The module is missing from the checksum database (sum.golang.org answers 404), so the go command would
# refuse it: GONOSUMDB exempts that one path for this build only, and the module zip's hash is checked
# against LOCAL_PATH_PROVISIONER_SUM (versions.env) before anything is built from it. The build runs inside
# the module (a copy of its download, main package at its root), so the module's own go.sum pins every
# dependency (-mod=readonly), and those are still checked against sum.golang.org when downloaded.
. "$(dirname "$0")/../lib/common.sh"
module=github.com/rancher/local-path-provisioner
version=$LOCAL_PATH_PROVISIONER_VERSION
ref="docker.io/rancher/local-path-provisioner:$version"
helper=$LOCAL_PATH_HELPER_IMAGE
[[ ${helper##*:} == "$DEBIAN_SUITE" ]] || { log "LOCAL_PATH_HELPER_IMAGE ($helper) must be tagged DEBIAN_SUITE ($DEBIAN_SUITE)"; exit 1; }
bin="$CACHE/bin/local-path-provisioner-$version"
work=$(mktemp -d); trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT

have() { docker image inspect "$1" >/dev/null 2>&1 && [[ -f "$CACHE/images/$(echo "$1" | tr '/:' '__').tar" ]]; }

if have "$ref"; then
  log "present: $ref"
else
  if [[ ! -x $bin ]]; then
    start=$SECONDS
    export GONOSUMDB=$module GOFLAGS="-mod=readonly -buildvcs=false"
    read -r dir sum < <(cd "$work" && go mod download -json "$module@$version" | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(d["Error"]) if d.get("Error") else print(d["Dir"], d["Sum"])')
    [[ -n ${dir:-} ]] || exit 1
    [[ $sum == "$LOCAL_PATH_PROVISIONER_SUM" ]] \
      || { log "$module@$version: module hash $sum, versions.env pins $LOCAL_PATH_PROVISIONER_SUM"; exit 1; }
    cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
    log "building $module@$version -> $bin"
    # As upstream's scripts/build: the version through main.VERSION (what --version prints).
    (cd "$work/src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.VERSION=$version" -o "$bin.tmp" .)
    mv "$bin.tmp" "$bin"
    log "built local-path-provisioner $version in $((SECONDS - start))s"
  fi
  dir="$work/provisioner"
  static_tree "$dir"
  mkdir -p "$dir/usr/bin"
  # Where upstream's image has it, so upstream's manifests (`command: [local-path-provisioner, ...]`) work.
  cp "$bin" "$dir/usr/bin/local-path-provisioner"
  # It only talks to the API server: non-root (upstream's image runs as root).
  tar -C "$dir" -c . | import_image "$ref" - \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENTRYPOINT ["/usr/bin/local-path-provisioner"]' --change 'USER 65532:65532'
fi

if have "$helper"; then
  log "present: $helper"
else
  # The helper pod runs `/bin/sh /script/setup|teardown` (mkdir, chmod, rm -rf on a hostPath) as root.
  # One static busybox from DEBIAN_SUITE (debootstrap checks the archive's signature), with a link per
  # applet; about 2 MB instead of a whole minbase root filesystem.
  base=$(rootfs local-path-helper busybox-static)
  mkdir -p "$work/base" && tar -C "$work/base" -xf "$base"
  dir="$work/helper"
  mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc" "$dir/usr/share/doc/busybox-static"
  chmod 1777 "$dir/tmp"
  src="$work/base/usr/bin/busybox"; [[ -f $src ]] || src="$work/base/bin/busybox"  # merged /usr or not
  cp "$src" "$dir/bin/busybox"
  cp -L "$work/base/usr/share/doc/busybox-static/copyright" "$dir/usr/share/doc/busybox-static/"
  for applet in $("$dir/bin/busybox" --list); do
    [[ -e $dir/bin/$applet ]] || ln -s busybox "$dir/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  tar -C "$dir" -c . | import_image "$helper" - --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]'
fi
