#!/usr/bin/env bash
# make tools: pinned helm, kind and kubectl into ./bin, built from Go modules
# (the only source of upstream binaries reachable here), cached across clones.
#   tools/install.sh [helm] [kind] [kubectl]   (default: all)
. "$(dirname "$0")/../images/lib/common.sh"
mkdir -p "$REPO_DIR/bin"
want=("$@"); [[ ${#want[@]} -gt 0 ]] || want=(helm kind kubectl)
for tool in "${want[@]}"; do
  case $tool in
  helm)
    src=$(LDFLAGS="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      gobin helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm) ;;
  kind)
    src=$(gobin kind sigs.k8s.io/kind "$KIND_VERSION" sigs.k8s.io/kind) ;;
  kubectl)
    K8S_BINARIES=kubectl "$IMAGES_DIR/kubernetes/build-binaries.sh" >&2
    src="$CACHE/bin/kubectl-$KUBERNETES_VERSION" ;;
  *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
  ln -sfn "$src" "$REPO_DIR/bin/$tool"
done
for tool in "${want[@]}"; do
  case $tool in
  helm) echo "helm    $("$REPO_DIR/bin/helm" version --short)" ;;
  kind) echo "kind    $("$REPO_DIR/bin/kind" version)" ;;
  kubectl) echo "kubectl $("$REPO_DIR/bin/kubectl" version --client 2>/dev/null | head -1)" ;;
  esac
done
