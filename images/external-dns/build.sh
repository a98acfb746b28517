#!/usr/bin/env bash
# registry.k8s.io/external-dns/external-dns:$EXTERNAL_DNS_VERSION from sigs.k8s.io/external-dns.
. "$(dirname "$0")/../lib/common.sh"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
static_tree "$dir"
mkdir -p "$dir/ko-app"
cp "$(gobin external-dns sigs.k8s.io/external-dns "$EXTERNAL_DNS_VERSION" sigs.k8s.io/external-dns)" "$dir/ko-app/external-dns"
tar -C "$dir" -c . | import_image "registry.k8s.io/external-dns/external-dns:$EXTERNAL_DNS_VERSION" - \
  --change 'ENTRYPOINT ["/ko-app/external-dns"]' --change 'USER 65532:65532'
