#!/usr/bin/env bash
# ghcr.io/k8s-gateway/k8s_gateway:$K8S_GATEWAY_VERSION from github.com/k8s-gateway/k8s_gateway: the peer
# `make bench` compares the chart with (bench only; the chart never runs it). Not part of `make images`:
# bench/peer.py runs this script when the image is missing.
# The module proxy serves the module, but the checksum database has no entry for it (sum.golang.org
# answers 404), so the go command refuses it unless that one path is exempt from the lookup: GONOSUMDB,
# set for this build only. Every other module is still checked against sum.golang.org, and the build runs
# inside the module (a copy of its download), so the module's own go.sum pins the whole dependency graph
# (-mod=readonly: a module go.sum does not list is an error, not a fetch).
. "$(dirname "$0")/../lib/common.sh"
module=github.com/k8s-gateway/k8s_gateway
version=$K8S_GATEWAY_VERSION
ref="ghcr.io/k8s-gateway/k8s_gateway:$version"
bin="$CACHE/bin/k8s-gateway-$version"
work=$(mktemp -d); trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
if [[ ! -x $bin ]]; then
  start=$SECONDS
  export GONOSUMDB=$module GOFLAGS="-mod=readonly -buildvcs=false"
  dir=$(cd "$work" && go mod download -json "$module@$version" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d.get("Error")) if d.get("Error") else print(d["Dir"])')
  cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
  log "building $module@$version ./cmd -> $bin"
  (cd "$work/src" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X main.pluginVersion=$version -X github.com/coredns/coredns/coremain.GitCommit=$version" \
    -o "$bin.tmp" ./cmd)
  mv "$bin.tmp" "$bin"
  log "built k8s-gateway $version in $((SECONDS - start))s"
fi
dir="$work/rootfs"
static_tree "$dir"
cp "$bin" "$dir/coredns"
# Non-root; the bench's Corefile listens on 1053, so no capability for port 53 is needed.
tar -C "$dir" -c . | import_image "$ref" - --change 'ENTRYPOINT ["/coredns"]' --change 'USER 65532:65532'
