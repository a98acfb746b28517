#!/usr/bin/env bash
# make cluster: a real two-node kind cluster on a Docker engine this project runs: kube-router as the
# CNI (pod routes between the nodes) and NetworkPolicy engine, local-path-provisioner as the default
# StorageClass, the chart's images loaded, and CoreDNS cut off from the machine's resolver.
#   tests/cluster/up.sh [NAME]    prints the kubeconfig path last
. "$(dirname "$0")/../../images/lib/common.sh"
name=${1:-k2s-dns}
kubeconfig="$CACHE/kubeconfig-$name"
here="$REPO_DIR/tests/cluster"
"$IMAGES_DIR/engine/docker.sh" up >&2
step() { log "cluster $name: $*"; }
if ! kind get clusters 2>/dev/null | grep -qx "$name"; then
  start=$SECONDS
  image="kindest/node:$KUBERNETES_VERSION-k2s$NODE_IMAGE_REVISION"
  [[ ${IMAGE_SOURCE:-build} == build ]] || image=""
  step "creating 2 nodes from ${image:-the default kind node image} (about 40 s; nodes stay NotReady until kube-router runs)"
  # No --wait: without a CNI no node turns Ready until kube-router is installed below.
  kind create cluster --name "$name" ${image:+--image "$image"} --config "$here/kind-config.yaml" \
    --kubeconfig "$kubeconfig" >&2
  step "created in $((SECONDS - start))s"
else
  kind get kubeconfig --name "$name" >"$kubeconfig"
fi
export KUBECONFIG=$kubeconfig
images=(
  "$(python3 "$REPO_DIR/tools/chart_image.py" externalDNS.image)"
  "$(python3 "$REPO_DIR/tools/chart_image.py" coredns.patch.image)"
  "docker.io/cloudnativelabs/kube-router:$KUBE_ROUTER_VERSION"
  "docker.io/rancher/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION"
  "$LOCAL_PATH_HELPER_IMAGE"
  "$MUSL_CLIENT_IMAGE"
  # The Kubernetes DNS conformance tests' images (images/conformance/build.sh, tests/e2e/test_57_conformance.py).
  "registry.k8s.io/e2e-test-images/agnhost:$AGNHOST_VERSION"
  "registry.k8s.io/e2e-test-images/jessie-dnsutils:$JESSIE_DNSUTILS_TAG"
)
# make bench's peer (k8s_gateway): loaded when built (images/k8s-gateway/build.sh); otherwise the bench
# builds and loads it itself when it measures the peer.
peer="ghcr.io/k8s-gateway/k8s_gateway:$K8S_GATEWAY_VERSION"
if docker image inspect "$peer" >/dev/null 2>&1; then images+=("$peer"); fi
i=0
for ref in "${images[@]}"; do
  i=$((i + 1)); t=$SECONDS
  kind load docker-image --name "$name" "$ref" >/dev/null
  step "image $i/${#images[@]} loaded on both nodes in $((SECONDS - t))s: $ref"
done
# K2s runs Linux workloads on its (Linux) control-plane node; so does this cluster, so pods of one
# release land on both nodes and their traffic crosses nodes.
kubectl taint nodes -l node-role.kubernetes.io/control-plane node-role.kubernetes.io/control-plane:NoSchedule- \
  >/dev/null 2>&1 || true
step "kube-router (CNI + NetworkPolicy)"
sed -e "s|@KUBE_ROUTER_IMAGE@|docker.io/cloudnativelabs/kube-router:$KUBE_ROUTER_VERSION|" "$here/kube-router.yaml" \
  | kubectl apply -f - >/dev/null
kubectl -n kube-system rollout status daemonset/kube-router --timeout=180s >&2
kubectl wait --for=condition=Ready node --all --timeout=180s >&2
step "local-path-provisioner as the default StorageClass"
# The node image's `standard` class is kind's no-provisioner fallback; a StorageClass's provisioner is
# immutable, so replace it.
if [[ $(kubectl get storageclass standard -o 'jsonpath={.provisioner}' 2>/dev/null) != rancher.io/local-path ]]; then
  kubectl delete storageclass standard --ignore-not-found >/dev/null
fi
sed -e "s|@PROVISIONER_IMAGE@|docker.io/rancher/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION|" \
  -e "s|@HELPER_IMAGE@|$LOCAL_PATH_HELPER_IMAGE|" "$here/local-path-storage.yaml" | kubectl apply -f - >/dev/null
kubectl -n local-path-storage rollout status deployment/local-path-provisioner --timeout=180s >&2
# The test cluster must never forward queries to this machine's (off-box) resolver.
python3 "$here/isolate_dns.py" >&2
kubectl -n kube-system rollout status deploy/coredns --timeout=180s >&2
step "ready: $(kubectl get nodes --no-headers | awk '{print $1 "=" $2}' | tr '\n' ' ')"
echo "$kubeconfig"
