#!/usr/bin/env bash
# Steps that wait: 4 independent stages, each `FROM busybox` and one RUN that
# sleeps 2 s then burns ~0.75 CPU-seconds (sha256sum of 120 MB of zeros),
# gathered by a last stage. Built with --no-cache on a store holding only the
# base (loaded from ../shared/bases/busybox); prints the median of REPS
# wall-clock builds for each JOBS value ("default" = no --jobs flag).
# Ideal: max(stage) + CPU time / cores = 2 + 4 * 0.75 / cores.
#
# Usage: bench/wait-steps.sh     (from the repository root, as root)
# Environment: KILN (default target/release/kiln), REPS (3), JOBS ("default"),
#              MB (120, the megabytes each stage hashes).
set -euo pipefail
KILN=$(realpath "${KILN:-target/release/kiln}")
REPS=${REPS:-3}
JOBS=${JOBS:-default}
MB=${MB:-120}
base=$(realpath ../shared/bases/busybox)
work=$(mktemp -d /tmp/kiln-bench-wait.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
{
    for i in 1 2 3 4; do
        echo "FROM busybox AS s$i"
        echo "RUN sleep 2 && dd if=/dev/zero bs=1M count=$MB 2>/dev/null | sha256sum > /sum$i"
    done
    echo "FROM busybox"
    for i in 1 2 3 4; do echo "COPY --from=s$i /sum$i /"; done
} > "$work/ctx/Dockerfile"
KILN_ROOT=$work/store "$KILN" load -i "$base" -t busybox:latest > /dev/null

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-10s %10s %s\n' jobs median runs
for jobs in $JOBS; do
    flag=()
    [ "$jobs" != default ] && flag=(--jobs "$jobs")
    runs=()
    for _ in $(seq 1 "$REPS"); do
        start=$(now)
        KILN_ROOT=$work/store "$KILN" build --no-cache "${flag[@]}" --progress quiet -t wait:1 "$work/ctx" > /dev/null
        end=$(now)
        runs+=("$(echo "$end - $start" | bc -l)")
    done
    med=$(printf '%s\n' "${runs[@]}" | median)
    printf '%-10s %10.2f %s\n' "$jobs" "$med" "$(printf '%.2f ' "${runs[@]}")"
done
