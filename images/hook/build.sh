#!/usr/bin/env bash
# The hook image (Python, this repo's src/k2s_dns) without any registry: a Debian
# root filesystem from debootstrap plus the package, imported with docker import.
#   images/hook/build.sh [IMAGE_REF]   (default: the chart's default image)
. "$(dirname "$0")/../lib/common.sh"
ref=${1:-$(python3 "$REPO_DIR/tools/chart_image.py" coredns.patch.image)}
# python3-kubernetes (the official client) and python3-prometheus-client serve the controller; Debian's
# packages rather than pip's: kubernetes 37 from PyPI pulls aiohttp and pydantic (104 MB).
base=$(rootfs hook python3 python3-cryptography python3-cffi-backend ca-certificates \
  python3-kubernetes python3-prometheus-client)
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
tar -C "$dir" -xf "$base"
mkdir -p "$dir/opt/k2s-dns"
cp -r "$REPO_DIR/src/k2s_dns" "$dir/opt/k2s-dns/"
find "$dir/opt/k2s-dns" -name __pycache__ -prune -exec rm -rf {} +
tar -C "$dir" -c . | import_image "$ref" - \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PYTHONPATH=/opt/k2s-dns' --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
  --change 'USER 65532:65532' --change 'ENTRYPOINT ["python3", "-m"]'
