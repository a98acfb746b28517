#!/usr/bin/env bash
# Builds the Kubernetes binaries a kind node needs from the k8s.io/kubernetes Go
# module. Its go.mod replaces the k8s.io/* staging modules with local paths,
# which only work inside its own repository, so the wrapper module pins each
# staging module to the matching published v0.Y.Z instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
set -a; . "$here/../../versions.env"; set +a
: "${CACHE:=${K2S_CACHE:-$HOME/.cache/k2s-dns}}"; export CACHE
mod=$(mktemp); trap 'rm -f "$mod"' EXIT
curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod" -o "$mod"
replaces=()
while read -r staging; do
  replaces+=("replace $staging => $staging $KUBERNETES_STAGING_VERSION")
done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$mod")
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
export LDFLAGS
for bin in ${K8S_BINARIES:-kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy}; do
  "$here/../go/build.sh" "$bin" k8s.io/kubernetes "$KUBERNETES_VERSION" "k8s.io/kubernetes/cmd/$bin" "${replaces[@]}"
done
