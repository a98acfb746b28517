#!/usr/bin/env bash
# Gateway API CRDs for the e2e suite: the standard channel of $GATEWAY_API_VERSION (versions.env), read
# from the sigs.k8s.io/gateway-api Go module (served by the module proxy; its GitHub release assets are
# not reachable air-gapped), applied to $KUBECONFIG's cluster. Only the kinds ExternalDNS's gateway-*
# sources read (TLSRoute v1 is standard from v1.5.0 on; ExternalDNS v0.23 reads TLSRoute v1). Idempotent.
#   tests/cluster/gateway-crds.sh [--print-dir]
. "$(dirname "$0")/../../images/lib/common.sh"
: "${KUBECONFIG:?the cluster to apply the CRDs to}"
dir=$(cd "$CACHE" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
if [[ ${1:-} == --print-dir ]]; then echo "$dir/config/crd/standard"; exit 0; fi
crds=()
for plural in gatewayclasses gateways httproutes grpcroutes tlsroutes; do
  crds+=(-f "$dir/config/crd/standard/gateway.networking.k8s.io_$plural.yaml")
done
# Server-side: the HTTPRoute CRD is too large for client-side apply's last-applied annotation.
kubectl apply --server-side --force-conflicts --field-manager=k2s-dns-e2e "${crds[@]}" >&2
for plural in gatewayclasses gateways httproutes grpcroutes tlsroutes; do
  kubectl wait --for=condition=Established "crd/$plural.gateway.networking.k8s.io" --timeout=60s >&2
done
log "Gateway API $GATEWAY_API_VERSION standard CRDs applied"
