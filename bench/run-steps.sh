#!/usr/bin/env bash
# Per-RUN overhead: a Dockerfile of N `RUN true` steps on busybox, built cold
# (empty store, base loaded from ../shared/bases/busybox); reports the build
# time and milliseconds per step. Also times the same build with every step
# cached.
#
# Usage: bench/run-steps.sh     (from the repository root)
# Environment: KILN (default target/release/kiln), STEPS (50).
set -euo pipefail
KILN=$(realpath "${KILN:-target/release/kiln}")
STEPS=${STEPS:-50}
base=$(realpath ../shared/bases/busybox)
work=$(mktemp -d /tmp/kiln-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
{
    echo "FROM busybox"
    for i in $(seq 1 "$STEPS"); do echo "RUN true"; done
} > "$work/ctx/Dockerfile"
export KILN_ROOT=$work/store
"$KILN" load -i "$base" -t busybox:latest > /dev/null
time_build() {
    local start end
    start=$(date +%s.%N)
    "$KILN" build --progress quiet -t steps:1 "$work/ctx"
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
cold=$(time_build)
cached=$(time_build)
printf 'cold:   %6.2f s for %d RUN steps = %5.1f ms per step\n' "$cold" "$STEPS" "$(echo "$cold * 1000 / $STEPS" | bc -l)"
printf 'cached: %6.2f s\n' "$cached"
