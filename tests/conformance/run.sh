#!/usr/bin/env bash
# The Kubernetes DNS conformance tests (the 8 `[sig-network] DNS ... [Conformance]` specs of e2e.test
# $KUBERNETES_VERSION) against the cluster of $KUBECONFIG, air-gapped: e2e.test and the two images its DNS
# specs run come from images/conformance/build.sh (built here when missing), the images are loaded into the
# kind cluster named on the command line, and nothing is ever pulled (the specs' pods use IfNotPresent).
# e2e.test creates and deletes its own namespaces (dns-*) and touches nothing else.
#   tests/conformance/run.sh [KIND_CLUSTER]
# KUBECONFIG      the cluster (default: make cluster's, $CACHE/kubeconfig-k2s-dns)
# KIND_CLUSTER    kind cluster to `kind load docker-image` the images into; without it, the images must
#                 already be on every node (checked)
# REPORT_DIR      JUnit report and full log (default: $CACHE/conformance-$KUBERNETES_VERSION/report-<time>)
# E2E_FOCUS       ginkgo focus (default: the DNS conformance specs); E2E_MIN_SPECS: fewer run fails (8)
# E2E_ARGS        more e2e.test flags
# Prints one `PASS|FAIL <spec>` line per spec that ran, from the JUnit report, and the run time; exits
# non-zero if a spec (or the suite setup) failed or fewer than E2E_MIN_SPECS specs ran.
. "$(dirname "$0")/../../images/lib/common.sh"
kind_cluster=${1:-${KIND_CLUSTER:-}}
: "${KUBECONFIG:=$CACHE/kubeconfig-k2s-dns}"
export KUBECONFIG
[[ -f $KUBECONFIG ]] || { log "no kubeconfig at $KUBECONFIG (set KUBECONFIG, or run make cluster)"; exit 2; }
focus=${E2E_FOCUS:-'\[sig-network\] DNS.*\[Conformance\]'}
min_specs=${E2E_MIN_SPECS:-8}
out_dir="$CACHE/conformance-$KUBERNETES_VERSION"
e2e_test="$out_dir/e2e.test"
report=${REPORT_DIR:-$out_dir/report-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$report"
images=("registry.k8s.io/e2e-test-images/agnhost:$AGNHOST_VERSION"
  "registry.k8s.io/e2e-test-images/jessie-dnsutils:$JESSIE_DNSUTILS_TAG")
start=$SECONDS

if [[ -n $kind_cluster ]]; then
  "$REPO_DIR/images/conformance/build.sh" all
  command -v kind >/dev/null || "$REPO_DIR/tools/install.sh" kind >&2
  t=$SECONDS
  kind load docker-image --name "$kind_cluster" "${images[@]}" >&2
  log "images loaded into kind cluster $kind_cluster in $((SECONDS - t))s: ${images[*]}"
else
  [[ -x $e2e_test ]] || "$REPO_DIR/images/conformance/build.sh" e2e
  kubectl=$(command -v kubectl || echo "$CACHE/bin/kubectl-$KUBERNETES_VERSION")
  if [[ -x $kubectl ]]; then
    # A missing image would be pulled, which fails air-gapped after minutes: say so at once.
    missing=$("$kubectl" get nodes -o json | python3 -c '
import json, sys
want = sys.argv[1:]
for node in json.load(sys.stdin)["items"]:
    have = {n for image in node["status"].get("images", []) for n in image.get("names", [])}
    for ref in want:
        if ref not in have:
            print(node["metadata"]["name"], ref)' "${images[@]}")
    if [[ -n $missing ]]; then
      log "images missing on nodes (give the kind cluster name to load them, or load them yourself):"
      sed 's/^/  /' <<<"$missing" >&2
      exit 2
    fi
  fi
fi

log "e2e.test $KUBERNETES_VERSION: focus '$focus' on $KUBECONFIG; full log $report/e2e.log"
t=$SECONDS
set +e
# shellcheck disable=SC2086
"$e2e_test" --provider=skeleton --kubeconfig="$KUBECONFIG" --report-dir="$report" \
  --ginkgo.focus="$focus" --ginkgo.v --ginkgo.silence-skips --ginkgo.no-color --ginkgo.timeout=1h \
  --disable-log-dump ${E2E_ARGS:-} 2>&1 | tee "$report/e2e.log" |
  # Progress: each spec's name, its steps and its result (the full output, with pod logs, is in e2e.log).
  grep --line-buffered -E '^\[sig-|^\[It\]|STEP:|^• |^•$|\[FAILED\]|\[PANICKED\]|^Ran [0-9]+ of|^(SUCCESS|FAIL)!|Unexpected error|Error waiting' |
  stdbuf -oL cut -c1-200
rc=${PIPESTATUS[0]}
set -e
e2e_seconds=$((SECONDS - t))

junit="$report/junit_01.xml"
[[ -f $junit ]] || { log "no JUnit report ($junit): e2e.test exited $rc before running the specs; see $report/e2e.log"; exit 1; }
set +e
python3 - "$junit" "$min_specs" <<'PY' | tee "$report/summary.txt"
import sys
import xml.etree.ElementTree as ET

junit, min_specs = sys.argv[1], int(sys.argv[2])
ran = failed = 0
for case in ET.parse(junit).getroot().iter("testcase"):
    status = case.get("status") or ("failed" if case.find("failure") is not None or case.find("error") is not None
                                    else "skipped" if case.find("skipped") is not None else "passed")
    if status == "skipped":
        continue
    name = case.get("name", "")
    if name.startswith("[It] "):
        name = name[len("[It] "):]
        ran += 1
    elif status == "passed":
        continue  # suite setup/teardown nodes: reported only when they fail
    ok = status == "passed"
    failed += not ok
    print(f"{'PASS' if ok else 'FAIL'} {name} ({float(case.get('time', 0)):.0f}s)" + ("" if ok else f" [{status}]"))
print(f"{ran} specs ran, {failed} failed")
if ran < min_specs:
    print(f"fewer than {min_specs} specs ran")
sys.exit(1 if failed or ran < min_specs else 0)
PY
verdict=$?
set -e
log "conformance run took $((SECONDS - start))s (e2e.test ${e2e_seconds}s, exit $rc); report in $report"
echo "elapsed_seconds=$((SECONDS - start)) e2e_seconds=$e2e_seconds e2e_exit=$rc" >>"$report/summary.txt"
[[ $verdict -eq 0 && $rc -eq 0 ]]
