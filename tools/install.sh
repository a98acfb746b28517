#!/usr/bin/env bash
# make tools: pinned helm, kind, kubectl and actionlint into ./bin, built from Go modules
# (the only source of upstream binaries reachable here), cached across clones.
#   tools/install.sh [helm] [kind] [kubectl] [actionlint]   (default: all)
. "$(dirname "$0")/../images/lib/common.sh"
mkdir -p "$REPO_DIR/bin"
want=("$@"); [[ ${#want[@]} -gt 0 ]] || want=(helm kind kubectl actionlint)
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
  actionlint)
    # `go install` as upstream documents it: the module's own go.mod (and go.sum) decide every dependency.
    src="$CACHE/bin/actionlint-$ACTIONLINT_VERSION"
    if [[ ! -x $src ]]; then
      log "go install github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
      gobin_dir=$(mktemp -d)
      GOBIN=$gobin_dir CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
        "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
      mv "$gobin_dir/actionlint" "$src"
      rmdir "$gobin_dir"
    fi ;;
  *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
  ln -sfn "$src" "$REPO_DIR/bin/$tool"
done
for tool in "${want[@]}"; do
  case $tool in
  helm) echo "helm    $("$REPO_DIR/bin/helm" version --short)" ;;
  kind) echo "kind    $("$REPO_DIR/bin/kind" version)" ;;
  kubectl) echo "kubectl $("$REPO_DIR/bin/kubectl" version --client 2>/dev/null | head -1)" ;;
  actionlint) echo "actionlint $("$REPO_DIR/bin/actionlint" -version | head -1)" ;;
  esac
done
