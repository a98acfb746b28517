#!/usr/bin/env bash
# make e2e: run tests/e2e against $KUBECONFIG, or against a kind cluster it
# brings up (and tears down afterwards unless KEEP_CLUSTER is set).
. "$(dirname "$0")/../../images/lib/common.sh"
name=${1:-k2s-dns}; shift || true
created=
if [[ -z ${KUBECONFIG:-} ]]; then
  make -C "$REPO_DIR" images
  # A fresh cluster every run: one left over from an earlier (killed) run may be stale.
  "$REPO_DIR/tests/cluster/down.sh" "$name" >/dev/null 2>&1 || true
  kubeconfig=$("$REPO_DIR/tests/cluster/up.sh" "$name" | tail -1)
  export KUBECONFIG=$kubeconfig E2E_DNS_NODEPORT=30053
  created=1
fi
start=$SECONDS
set +e
# The slowest tests and fixtures (>= 5 s) are listed at the end: where the suite's time goes.
python3 -m pytest "$REPO_DIR/tests/e2e" -p no:cacheprovider --durations=40 --durations-min=5 "$@"
rc=$?
set -e
log "e2e suite finished in $((SECONDS - start))s (exit $rc)"
if [[ -n $created && -z ${KEEP_CLUSTER:-} ]]; then "$REPO_DIR/tests/cluster/down.sh" "$name"; fi
exit $rc
