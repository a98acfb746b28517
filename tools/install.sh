#!/usr/bin/env bash
# make tools: pinned helm, kind, kubectl, actionlint, ct (chart-testing) and helm4 into ./bin, built from
# Go modules (the only source of upstream binaries reachable here), cached across clones.
#   tools/install.sh [helm] [kind] [kubectl] [actionlint] [ct] [helm4]   (default: all)
. "$(dirname "$0")/../images/lib/common.sh"
mkdir -p "$REPO_DIR/bin"
want=("$@"); [[ ${#want[@]} -gt 0 ]] || want=(helm kind kubectl actionlint ct helm4)
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
  ct)
    # chart-testing. `ct lint` also runs yamale and yamllint (Python: .venv) and helm (bin/helm, v3).
    # ct looks for its two configuration files (chart_schema.yaml, lintconf.yaml, in the module's etc/)
    # only in ./, ./.ct, ~/.ct, /usr/local/etc/ct and /etc/ct, so bin/ct is a wrapper that hands it the
    # copies kept in $CACHE/ct-VERSION/etc.
    ct_bin=$(LDFLAGS="-X github.com/helm/chart-testing/v3/ct/cmd.Version=$CHART_TESTING_VERSION" \
      gobin ct github.com/helm/chart-testing/v3 "$CHART_TESTING_VERSION" github.com/helm/chart-testing/v3/ct)
    ct_dir="$CACHE/ct-$CHART_TESTING_VERSION"
    src="$ct_dir/ct"
    if [[ ! -f $ct_dir/etc/chart_schema.yaml || ! -f $ct_dir/etc/lintconf.yaml ]]; then
      mod_dir=$(go mod download -json "github.com/helm/chart-testing/v3@$CHART_TESTING_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
      mkdir -p "$ct_dir/etc"
      install -m 0644 "$mod_dir/etc/chart_schema.yaml" "$mod_dir/etc/lintconf.yaml" "$ct_dir/etc/"
    fi
    {
      echo '#!/usr/bin/env bash'
      echo "# ct $CHART_TESTING_VERSION (tools/install.sh) with the configuration files its module ships."
      echo '# With --config FILE, CT_CONFIG_DIR points at them: chart_schema.yaml and lintconf.yaml are defaults only'
      echo '# (chart-yaml-schema / lint-conf in FILE or on the command line win). Without --config (ct finds'
      echo '# ./ct.yaml itself), CT_CHART_YAML_SCHEMA names the schema unless set. A CT_CONFIG_DIR of the caller wins.'
      printf 'etc=%q\n' "$ct_dir/etc"
      echo 'if [[ -z ${CT_CONFIG_DIR+x} ]]; then'
      echo '  case " $* " in'
      echo '  *" --config "* | *" --config="*) export CT_CONFIG_DIR=$etc ;;'
      echo '  *) export CT_CHART_YAML_SCHEMA=${CT_CHART_YAML_SCHEMA:-$etc/chart_schema.yaml} ;;'
      echo '  esac'
      echo 'fi'
      printf 'exec %q "$@"\n' "$ct_bin"
    } >"$src.tmp.$$"
    chmod 0755 "$src.tmp.$$"
    mv "$src.tmp.$$" "$src" ;;
  helm4)
    # Helm 4 next to Helm 3 (bin/helm stays v3: the e2e suite, ct and make lint use it); the version
    # variable is the one upstream's Makefile sets.
    src=$(LDFLAGS="-X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION" \
      gobin helm4 helm.sh/helm/v4 "$HELM4_VERSION" helm.sh/helm/v4/cmd/helm) ;;
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
  ct) echo "ct      $("$REPO_DIR/bin/ct" version | awk '/^Version:/ {print $2}')" ;;
  helm4) echo "helm4   $("$REPO_DIR/bin/helm4" version --short)" ;;
  esac
done
