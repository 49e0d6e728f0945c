#!/usr/bin/env bash
# Remote build cache benchmark: what --cache-from saves a build that starts
# with an empty store (a CI runner, a build pod), against a local registry
# (Debian's docker-registry on 127.0.0.1).
#
# Usage: bench/remote-cache.sh            (from the repository root)
# Environment:
#   KILN      kiln binary              (default: target/release/kiln)
#   RUNS      runs per measurement     (default: 3; the median is reported)
#   WORK_MB   random MB each of the 3 RUN steps writes (default: 40)
#   SPIN      shell loop iterations per RUN step, CPU work (default: 400000)
#   PORT      registry port            (default: 5330)
#
# Measured, each on a fresh store holding only the busybox base:
#   cold        no cache at all: every step runs
#   cache-from  --cache-from the registry (exported once with mode=max)
# and, on the store of the exporting build:
#   warm        a no-op rebuild from the local cache
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KILN=${KILN:-target/release/kiln}
RUNS=${RUNS:-3}
WORK_MB=${WORK_MB:-40}
SPIN=${SPIN:-400000}
PORT=${PORT:-5330}
DOCKER_REGISTRY=${DOCKER_REGISTRY:-docker-registry}
BUSYBOX=${BUSYBOX:-$here/../../shared/bases/busybox}

[[ -x $KILN ]] || { echo "kiln binary not found at $KILN (cargo build --release -p kiln-cli, or set KILN)" >&2; exit 1; }
KILN=$(cd "$(dirname "$KILN")" && pwd)/$(basename "$KILN")
for tool in python3 curl "$DOCKER_REGISTRY"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cache-bench.XXXXXX")
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
step() {
    echo "RUN i=0; while [ \$i -lt $SPIN ]; do i=\$((i+1)); done; dd if=/dev/urandom of=/$1 bs=1M count=$WORK_MB 2>/dev/null"
}
cat >"$ctx/Dockerfile" <<EOF
FROM busybox AS builder
$(step tool)
$(step lib)
FROM busybox
COPY --from=builder /tool /usr/local/bin/tool
$(step data)
EOF

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

# One exporting build.
fresh_store "$work/exporter"
"$KILN" --root "$work/exporter" build --cache-to "type=registry,ref=$cache,mode=max" "$ctx" >"$work/export.log" 2>&1

cold= from= warm=
for run in $(seq "$RUNS"); do
    fresh_store "$work/s"
    timed cold "$KILN" --root "$work/s" build --progress plain "$ctx"
    fresh_store "$work/s"
    timed from "$KILN" --root "$work/s" build --progress plain --cache-from "type=registry,ref=$cache" "$ctx"
    grep -q CACHED "$work/last.log" || { echo "no cache hit with --cache-from:" >&2; cat "$work/last.log" >&2; exit 1; }
    timed warm "$KILN" --root "$work/exporter" build --progress plain "$ctx"
done
c=$(median "$cold") f=$(median "$from") w=$(median "$warm")
echo "3 RUN steps (${WORK_MB} MB each, $SPIN-iteration loop), median of $RUNS:"
printf '  %-12s %6ss\n' cold "$c" cache-from "$f" warm "$w"
python3 -c "print(f'  cold / cache-from = {$c / $f:.1f}x')"
