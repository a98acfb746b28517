#!/usr/bin/env bash
# registry.k8s.io/etcd:$ETCD_IMAGE_TAG: etcd, etcdctl and etcdutl from go.etcd.io.
# Serves both kubeadm's static etcd pod and the chart's bundled etcd.
. "$(dirname "$0")/../lib/common.sh"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
static_tree "$dir"
cp "$(gobin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3)" "$dir/usr/local/bin/etcd"
cp "$(gobin etcdctl go.etcd.io/etcd/etcdctl/v3 "$ETCD_VERSION" go.etcd.io/etcd/etcdctl/v3)" "$dir/usr/local/bin/etcdctl"
cp "$(gobin etcdutl go.etcd.io/etcd/etcdutl/v3 "$ETCD_VERSION" go.etcd.io/etcd/etcdutl/v3)" "$dir/usr/local/bin/etcdutl"
tar -C "$dir" -c . | import_image "registry.k8s.io/etcd:$ETCD_IMAGE_TAG" - \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'ENTRYPOINT ["/usr/local/bin/etcd"]'
