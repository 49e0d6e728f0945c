#!/usr/bin/env bash
# Cache mounts carried by the remote cache (--cache-to ...,cache-mounts=true):
# what restoring a RUN --mount=type=cache directory saves a build on an
# empty store (a fresh CI runner), against a local registry (Debian's
# docker-registry on 127.0.0.1).
#
# Usage: bench/cache-mounts.sh            (from the repository root)
# Environment:
#   KILN      kiln binary              (default: target/release/kiln)
#   RUNS      runs per measurement     (default: 3; the median is reported)
#   DL_MB     MB the step "downloads" into the cache mount (default: 50)
#   DL_RATE   simulated link speed, MB/s (default: 25)
#   PORT      registry port            (default: 5350)
#
# The step stands for `go mod download`: when /cache/dl is missing it
# "downloads" DL_MB MB (random bytes from /dev/urandom, plus a sleep of
# DL_MB/DL_RATE seconds for the link), then reads it. A build argument
# changes on every run so the step itself always misses the layer cache
# (new sources, warm module cache). Measured, each on a fresh store
# holding only the busybox base:
#   without     no --cache-from: the step downloads
#   with        --cache-from the registry, exported once with
#               cache-mounts=true: the mount is restored, no download
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KILN=${KILN:-target/release/kiln}
RUNS=${RUNS:-3}
DL_MB=${DL_MB:-50}
DL_RATE=${DL_RATE:-25}
PORT=${PORT:-5350}
DOCKER_REGISTRY=${DOCKER_REGISTRY:-docker-registry}
BUSYBOX=${BUSYBOX:-$here/../../shared/bases/busybox}

[[ -x $KILN ]] || { echo "kiln binary not found at $KILN (cargo build --release -p kiln-cli, or set KILN)" >&2; exit 1; }
KILN=$(cd "$(dirname "$KILN")" && pwd)/$(basename "$KILN")
for tool in python3 curl "$DOCKER_REGISTRY"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-mounts-bench.XXXXXX")
export DOCKER_CONFIG=$work/docker-config XDG_CONFIG_HOME=$work/xdg-config
mkdir -p "$DOCKER_CONFIG" "$XDG_CONFIG_HOME"
unset KILN_ROOT KILN_CONFIG
# shellcheck source=bench/registry-lib.sh
source "$here/registry-lib.sh"
cleanup() {
    stop_registry
    [[ ${KEEP:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
start_registry "$work/registry"
cache=$reg/bench/app:buildcache

ctx=$work/ctx
mkdir -p "$ctx"
sleep_s=$(python3 -c "print(f'{$DL_MB / $DL_RATE:.3f}')")
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM busybox
ARG SOURCES=0
RUN --mount=type=cache,id=modules,target=/cache \\
    echo "sources \$SOURCES"; \\
    if [ ! -f /cache/dl ]; then dd if=/dev/urandom of=/cache/dl.tmp bs=1M count=$DL_MB 2>/dev/null && sleep $sleep_s && mv /cache/dl.tmp /cache/dl; fi; \\
    wc -c < /cache/dl > /size
DOCKERFILE

fresh_store() {
    rm -rf "$1"
    "$KILN" --root "$1" load -i "$BUSYBOX" -t busybox:latest >/dev/null
}

# timed VAR CMD...: runs CMD, appends its wall time in seconds to VAR.
timed() {
    local var=$1; shift
    sync
    local t0=$EPOCHREALTIME
    "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; exit 1; }
    local t1=$EPOCHREALTIME
    printf -v "$var" '%s %s' "${!var}" "$(python3 -c "print(f'{$t1 - $t0:.3f}')")"
}
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' $1; }

# One exporting build, timed too (packing and pushing the mount), then a
# re-export with the mount unchanged.
fresh_store "$work/exporter"
export_t=
timed export_t "$KILN" --root "$work/exporter" build --progress plain --build-arg SOURCES=export \
    --cache-to "type=registry,ref=$cache,cache-mounts=true" "$ctx"
grep -q "uploaded" "$work/last.log" || { echo "no upload note:" >&2; cat "$work/last.log" >&2; exit 1; }
reexport_t=
timed reexport_t "$KILN" --root "$work/exporter" build --progress plain --build-arg SOURCES=again \
    --cache-to "type=registry,ref=$cache,cache-mounts=true" "$ctx"
reexport_note=$(grep -o "uploaded [0-9]* blobs ([0-9]* bytes), [0-9]* already in the registry" "$work/last.log" || true)

without= with=
for run in $(seq "$RUNS"); do
    fresh_store "$work/s"
    timed without "$KILN" --root "$work/s" build --progress plain --build-arg SOURCES="$run" "$ctx"
    fresh_store "$work/s"
    timed with "$KILN" --root "$work/s" build --progress plain --build-arg SOURCES="$run" \
        --cache-from "type=registry,ref=$cache" "$ctx"
    grep -q 'restoring cache mount "modules"' "$work/last.log" || { echo "mount not restored:" >&2; cat "$work/last.log" >&2; exit 1; }
done
a=$(median "$without") b=$(median "$with")
echo "RUN with a cache mount that downloads $DL_MB MB at $DL_RATE MB/s when empty, empty store, median of $RUNS:"
printf '  %-24s %6ss\n' "without --cache-from" "$a" "with --cache-from" "$b"
python3 -c "print(f'  without / with = {$a / $b:.1f}x')"
printf '  %-24s %6ss\n' "first export" "$(median "$export_t")" "unchanged re-export" "$(median "$reexport_t")"
echo "  re-export: $reexport_note"
