#!/usr/bin/env bash
# Installs (Debian docker.io) and starts/stops a Docker engine for kind, owned by
# this project: its PID is recorded and only that PID is ever stopped.
#   images/engine/docker.sh up|down
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${CACHE:=${K2S_CACHE:-$HOME/.cache/k2s-dns}}"
run="$CACHE/run"; mkdir -p "$run"
pidfile="$run/dockerd.pid"

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case ${1:-up} in
up)
  if docker info >/dev/null 2>&1; then echo "docker engine already running"; exit 0; fi
  if ! command -v dockerd >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
  fi
  install -m 0755 "$here/runc-capfilter" /usr/local/libexec/k2s-dns-runc-capfilter 2>/dev/null || {
    mkdir -p /usr/local/libexec; install -m 0755 "$here/runc-capfilter" /usr/local/libexec/k2s-dns-runc-capfilter; }
  # cgroupfs: PID 1 is not systemd on these machines.
  nohup dockerd --add-runtime capfilter=/usr/local/libexec/k2s-dns-runc-capfilter \
    --default-runtime capfilter --exec-opt native.cgroupdriver=cgroupfs \
    >"$run/dockerd.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && { echo "docker engine up (pid $(cat "$pidfile"))"; exit 0; }; sleep 1; done
  echo "dockerd did not come up; log:" >&2; tail -20 "$run/dockerd.log" >&2; exit 1 ;;
down)
  if running; then
    pid=$(cat "$pidfile"); kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    echo "docker engine (pid $pid) stopped"
  fi
  rm -f "$pidfile" ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
