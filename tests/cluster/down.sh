#!/usr/bin/env bash
# make cluster-down: delete the kind cluster, its Docker network, and stop the
# Docker engine if (and only if) this project started it.
. "$(dirname "$0")/../../images/lib/common.sh"
name=${1:-k2s-dns}
if docker info >/dev/null 2>&1; then
  if kind get clusters 2>/dev/null | grep -qx "$name"; then kind delete cluster --name "$name"; fi
  if [[ -z $(docker ps -aq --filter network=kind) ]]; then docker network rm kind >/dev/null 2>&1 || true; fi
fi
rm -f "$CACHE/kubeconfig-$name"
"$IMAGES_DIR/engine/docker.sh" down
