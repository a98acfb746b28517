#!/usr/bin/env bash
# Control-plane images kubeadm deploys, under their upstream names and tags.
. "$(dirname "$0")/../lib/common.sh"
"$IMAGES_DIR/kubernetes/build-binaries.sh"
for name in kube-apiserver kube-controller-manager kube-scheduler; do
  dir=$(mktemp -d)
  static_tree "$dir"
  cp "$CACHE/bin/$name-$KUBERNETES_VERSION" "$dir/usr/local/bin/$name"
  tar -C "$dir" -c . | import_image "registry.k8s.io/$name:$KUBERNETES_VERSION" - \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change "ENTRYPOINT [\"/usr/local/bin/$name\"]"
  rm -rf "$dir"
done
# kube-proxy programs iptables/nftables and conntrack, so it needs those tools.
base=$(rootfs kube-proxy iptables nftables conntrack)
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
tar -C "$dir" -xf "$base"
cp "$CACHE/bin/kube-proxy-$KUBERNETES_VERSION" "$dir/usr/local/bin/kube-proxy"
tar -C "$dir" -c . | import_image "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION" - \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENTRYPOINT ["/usr/local/bin/kube-proxy"]'
