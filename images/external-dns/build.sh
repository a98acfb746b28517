#!/usr/bin/env bash
# registry.k8s.io/external-dns/external-dns:$EXTERNAL_DNS_VERSION from sigs.k8s.io/external-dns.
. "$(dirname "$0")/../lib/common.sh"
# ExternalDNS v0.23 needs Go >= 1.27: the go command fetches that toolchain through the module proxy.
# Exported here only, so every other build keeps the machine's toolchain.
export GOTOOLCHAIN=$EXTERNAL_DNS_GO
# The module proxy refuses a few versions v0.23.0's go.mod requires (403 "not available"); each is
# replaced by the nearest served one. openshift/api + client-go (OpenShift Route source): v0.21.0's pair.
# civogo and egoscale/v3: only their (unused here) cloud providers link them.
replaces=(
  "replace github.com/openshift/api => github.com/openshift/api v0.0.0-20251015095338-264e80a2b6e7"
  "replace github.com/openshift/client-go => github.com/openshift/client-go v0.0.0-20251015124057-db0dee36e235"
  "replace github.com/civo/civogo => github.com/civo/civogo v0.7.2"
  "replace github.com/exoscale/egoscale/v3 => github.com/exoscale/egoscale/v3 v3.1.43"
)
export LDFLAGS="-X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=$EXTERNAL_DNS_VERSION"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
static_tree "$dir"
mkdir -p "$dir/ko-app"
cp "$(gobin external-dns sigs.k8s.io/external-dns "$EXTERNAL_DNS_VERSION" sigs.k8s.io/external-dns "${replaces[@]}")" "$dir/ko-app/external-dns"
tar -C "$dir" -c . | import_image "registry.k8s.io/external-dns/external-dns:$EXTERNAL_DNS_VERSION" - \
  --change 'ENTRYPOINT ["/ko-app/external-dns"]' --change 'USER 65532:65532'
