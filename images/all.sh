#!/usr/bin/env bash
# make images: every build script the test cluster needs, one after the other, each announced with its
# place in the list, how long it took the last time on this machine (the estimate) and, when done, how
# long it took now. A build that is cached finishes in a second; a cold one (Go builds on 2 cores) takes
# minutes, so the estimate tells a waiting person whether the machine is stuck.
#   images/all.sh            all steps
. "$(dirname "$0")/lib/common.sh"
steps=(node external-dns hook kube-router local-path workstation musl-client conformance)
timings="$CACHE/timings"; mkdir -p "$timings"
# Cold builds measured on a 2-core machine (README's timing table): the estimate before this machine has
# built a step once.
declare -A cold=([node]=1500 [external-dns]=600 [hook]=60 [kube-router]=235 [local-path]=345 [workstation]=45 [musl-client]=40 [conformance]=300)
total=${#steps[@]} i=0 start=$SECONDS
"$IMAGES_DIR/engine/docker.sh" up >&2
for step in "${steps[@]}"; do
  i=$((i + 1))
  last=$(cat "$timings/$step" 2>/dev/null || true)
  if [[ -n $last ]]; then estimate="last build here took ${last}s"; else estimate="a cold build takes about ${cold[$step]:-?}s"; fi
  log "images [$i/$total] $step: started (cached: seconds; $estimate)"
  t=$SECONDS
  # Each script prints its own progress; a heartbeat shows the wait goes on while a long Go build is quiet.
  ( while sleep 60; do log "images [$i/$total] $step: still building after $((SECONDS - t))s ($estimate)"; done ) &
  beat=$!
  set +e
  "$IMAGES_DIR/$step/build.sh"
  rc=$?
  set -e
  kill "$beat" 2>/dev/null; wait "$beat" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    log "images [$i/$total] $step FAILED (exit $rc) after $((SECONDS - t))s: the lines above name the step;" \
      "rerun just it with images/$step/build.sh"
    exit "$rc"
  fi
  took=$((SECONDS - t))
  # Only real builds set the estimate; a cached run (seconds) says nothing about the next cold build.
  if ((took > 5)); then echo "$took" >"$timings/$step"; fi
  log "images [$i/$total] $step done in ${took}s (total $((SECONDS - start))s)"
done
