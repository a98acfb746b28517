#!/usr/bin/env bash
# make cluster: a real kind cluster on a Docker engine this project runs, with
# the chart's images loaded and CoreDNS cut off from the machine's resolver.
#   tests/cluster/up.sh [NAME]    prints the kubeconfig path last
. "$(dirname "$0")/../../images/lib/common.sh"
name=${1:-k2s-dns}
kubeconfig="$CACHE/kubeconfig-$name"
"$IMAGES_DIR/engine/docker.sh" up >&2
if ! kind get clusters 2>/dev/null | grep -qx "$name"; then
  start=$SECONDS
  image="kindest/node:$KUBERNETES_VERSION"
  [[ ${IMAGE_SOURCE:-build} == build ]] || image=""
  kind create cluster --name "$name" ${image:+--image "$image"} --config "$REPO_DIR/tests/cluster/kind-config.yaml" \
    --kubeconfig "$kubeconfig" --wait 180s >&2
  log "kind cluster $name created in $((SECONDS - start))s"
else
  kind get kubeconfig --name "$name" >"$kubeconfig"
fi
export KUBECONFIG=$kubeconfig
# The test cluster must never forward queries to this machine's (off-box) resolver.
python3 "$REPO_DIR/tests/cluster/isolate_dns.py" >&2
for ref in "$(python3 "$REPO_DIR/tools/chart_image.py" externalDNS.image)" \
           "$(python3 "$REPO_DIR/tools/chart_image.py" coredns.patch.image)"; do
  kind load docker-image --name "$name" "$ref" >&2
done
# make bench's peer (k8s_gateway): loaded when built (images/k8s-gateway/build.sh); otherwise the bench
# builds and loads it itself when it measures the peer.
peer="ghcr.io/k8s-gateway/k8s_gateway:$K8S_GATEWAY_VERSION"
if docker image inspect "$peer" >/dev/null 2>&1; then
  kind load docker-image --name "$name" "$peer" >&2
fi
kubectl wait --for=condition=Ready node --all --timeout=180s >&2
kubectl -n kube-system rollout status deploy/coredns --timeout=180s >&2
echo "$kubeconfig"
