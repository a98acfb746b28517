#!/usr/bin/env bash
# Builds one Go main package at a pinned version into the binary cache, through
# a throw-away wrapper module, so upstream replace directives (k8s staging
# modules, external-dns) do not apply and nothing is vendored in this repo.
#   images/go/build.sh OUT_NAME MODULE VERSION PACKAGE [extra go.mod lines...]
# Environment: CACHE (binary cache dir), LDFLAGS, CGO_ENABLED (default 0).
set -euo pipefail
name=$1 module=$2 version=$3 pkg=$4; shift 4
: "${CACHE:?}"
out="$CACHE/bin/$name-$version"
if [[ -x $out ]]; then echo "cached: $out"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  echo "module k2s-dns.local/build/$name"
  echo "go 1.24"
  echo "require $module $version"
  for line in "$@"; do echo "$line"; done
} >"$work/go.mod"
mkdir -p "$CACHE/bin"
cd "$work"
echo "building $pkg@$version -> $out"
start=$SECONDS
GOFLAGS=-mod=mod go get "$pkg@$version" >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod download "$module"
CGO_ENABLED=${CGO_ENABLED:-0} GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w ${LDFLAGS:-}" -o "$out.tmp" "$pkg"
mv "$out.tmp" "$out"
echo "built $name $version in $((SECONDS - start))s"
