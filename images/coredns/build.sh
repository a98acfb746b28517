#!/usr/bin/env bash
# registry.k8s.io/coredns/coredns:$COREDNS_VERSION from github.com/coredns/coredns
# (its default plugin set includes etcd).
. "$(dirname "$0")/../lib/common.sh"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
static_tree "$dir"
cp "$(gobin coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns)" "$dir/coredns"
# As upstream: non-root, with the file capability to bind port 53.
command -v setcap >/dev/null || { apt-get update -qq; apt-get install -y -qq libcap2-bin >/dev/null; }
setcap cap_net_bind_service=+ep "$dir/coredns"
tar --xattrs --xattrs-include=security.capability -C "$dir" -c . | import_image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" - \
  --change 'ENTRYPOINT ["/coredns"]' --change 'USER 65532:65532'
