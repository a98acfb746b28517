#!/usr/bin/env bash
# registry.k8s.io/pause:$PAUSE_VERSION from this folder's Go program.
. "$(dirname "$0")/../lib/common.sh"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
static_tree "$dir"
(cd "$IMAGES_DIR/pause" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$dir/pause" .)
tar -C "$dir" -c . | import_image "registry.k8s.io/pause:$PAUSE_VERSION" - --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535'
