#!/usr/bin/env bash
# registry.k8s.io/coredns/coredns:$COREDNS_VERSION from github.com/coredns/coredns
# (its default plugin set includes etcd).
. "$(dirname "$0")/../lib/common.sh"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
static_tree "$dir"
cp "$(gobin coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns)" "$dir/coredns"
tar -C "$dir" -c . | import_image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" - \
  --change 'ENTRYPOINT ["/coredns"]' --change 'USER 65532:65532'
