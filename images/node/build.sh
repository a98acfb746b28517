#!/usr/bin/env bash
# kindest/node:$KUBERNETES_VERSION without any registry: a Debian root filesystem
# laid out like kind's base image (kind's own node files, read from the pinned
# sigs.k8s.io/kind module), Debian's containerd/runc/CNI plugins, Kubernetes
# binaries built from source, and every image kubeadm deploys preloaded.
# No CNI config is baked in: kind runs with networking.disableDefaultCNI
# (tests/cluster/kind-config.yaml) and tests/cluster/up.sh installs kube-router,
# which writes each node's config with that node's pod CIDR (a static config
# would hand out the same addresses on every node). NODE_IMAGE_REVISION in
# versions.env names builds whose content changed at the same Kubernetes version,
# so a machine with an older image cached builds the new one.
. "$(dirname "$0")/../lib/common.sh"
ref="kindest/node:$KUBERNETES_VERSION-k2s$NODE_IMAGE_REVISION"
if docker image inspect "$ref" >/dev/null 2>&1 && [[ -z ${REBUILD:-} ]]; then log "$ref present"; exit 0; fi

kind_src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
files="$kind_src/images/base/files"
base=$(rootfs node systemd systemd-sysv dbus containerd runc iptables nftables conntrack iproute2 \
  ethtool util-linux mount kmod libseccomp2 ca-certificates procps containernetworking-plugins socat \
  bash curl jq)
crictl=$(gobin crictl sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl)
"$IMAGES_DIR/kubernetes/build-binaries.sh"

root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$base"
install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
mkdir -p "$root/kind/bin" "$root/kind/manifests" "$root/etc/containerd" "$root/etc/kubernetes/manifests"
install -m 0755 "$files"/kind/bin/* "$root/kind/bin/"
install -m 0644 "$files/etc/crictl.yaml" "$root/etc/"
install -m 0644 "$files"/etc/default/* "$root/etc/default/"
install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$root/etc/systemd/system/"
mkdir -p "$root/etc/systemd/system/kubelet.service.d"
install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
# Debian's containerd 1.6 reads kind's v2 config; drop the rootless-only fuse snapshotter.
# The node lacks CAP_SYS_RESOURCE (this machine's bounding set has no such bit), so
# runc cannot lower oom_score_adj for critical pods: clamp it as kind does rootless.
python3 - "$files/etc/containerd/config.toml" "$root/etc/containerd/config.toml" "$PAUSE_VERSION" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r'\[proxy_plugins\][^\[]*\[proxy_plugins\."fuse-overlayfs"\][^\[]*', '', text)
text = re.sub(r'registry\.k8s\.io/pause:[0-9.]+', 'registry.k8s.io/pause:' + sys.argv[3], text)
text = text.replace('restrict_oom_score_adj = false', 'restrict_oom_score_adj = true')
open(sys.argv[2], 'w').write(text)
PY
ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
ctr oci spec | python3 -c '
import json, sys
spec = json.load(sys.stdin)
spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
spec["process"].pop("rlimits", None)
json.dump(spec, sys.stdout, indent=2)' >"$root/etc/containerd/cri-base.json"
install -m 0755 "$crictl" "$root/usr/local/bin/crictl"
for bin in kubeadm kubelet kubectl; do install -m 0755 "$CACHE/bin/$bin-$KUBERNETES_VERSION" "$root/usr/bin/$bin"; done
echo "$KUBERNETES_VERSION" >"$root/kind/version"
mkdir -p "$root/opt/cni" "$root/etc/cni/net.d"
ln -sfn /usr/lib/cni "$root/opt/cni/bin"
install -m 0644 "$IMAGES_DIR/node/default-storage.yaml" "$root/kind/manifests/"
# The same service trimming kind's base image does.
find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
  "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
  "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service dbus.service >/dev/null 2>&1 || \
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
chroot "$root" systemctl mask systemd-binfmt.service >/dev/null 2>&1

tar -C "$root" -c . | docker import - k2s-dns/node-rootfs:build >/dev/null
# Preload kubeadm's images the way kind's node-image builder does: run containerd
# in a build container, import the archives, commit.
for script in pause etcd coredns; do "$IMAGES_DIR/$script/build.sh"; done
"$IMAGES_DIR/kubernetes/build-images.sh"
cid=$(docker run -d --privileged --entrypoint /bin/sleep k2s-dns/node-rootfs:build infinity)
trap 'docker rm -f "$cid" >/dev/null 2>&1; rm -rf "$root"' EXIT
docker exec -d "$cid" sh -c 'containerd >/var/log/containerd-build.log 2>&1'
for _ in $(seq 30); do docker exec "$cid" ctr version >/dev/null 2>&1 && break; sleep 1; done
for image in "registry.k8s.io/pause:$PAUSE_VERSION" "registry.k8s.io/etcd:$ETCD_IMAGE_TAG" \
  "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "registry.k8s.io/kube-apiserver:$KUBERNETES_VERSION" \
  "registry.k8s.io/kube-controller-manager:$KUBERNETES_VERSION" "registry.k8s.io/kube-scheduler:$KUBERNETES_VERSION" \
  "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION"; do
  docker save "$image" | docker exec -i "$cid" ctr -n k8s.io images import --all-platforms --snapshotter overlayfs - >/dev/null
done
docker exec "$cid" ctr -n k8s.io images ls -q
docker exec "$cid" sh -c 'kill $(pidof containerd); rm -f /var/log/containerd-build.log'
sleep 2
docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  --change 'ENV container=docker' --change 'CMD []' "$cid" "$ref" >/dev/null
docker rm -f "$cid" >/dev/null
docker rmi k2s-dns/node-rootfs:build >/dev/null
log "built $ref"
