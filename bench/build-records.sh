#!/usr/bin/env bash
# What build records cost: a cached rebuild of a Dockerfile with STEPS
# steps, timed with the binary before records (BEFORE) and with them
# (AFTER), interleaved, RUNS times each; the median of each and their
# ratio. Then the size of one record, and how long `kiln builds`, `kiln
# builds show` and `kiln builds trace` take with the store's 100 records.
#
#   BEFORE=/tmp/kiln-before AFTER=target/release/kiln bench/build-records.sh
#
# Settings: BEFORE, AFTER (default target/release/kiln), RUNS (21), STEPS
# (40), BUSYBOX (the busybox OCI layout, default ../shared/bases/busybox).
# Needs root (RUN steps) and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
AFTER=${AFTER:-$here/../target/release/kiln}
BEFORE=${BEFORE:?set BEFORE to a kiln binary without build records}
RUNS=${RUNS:-21}
STEPS=${STEPS:-40}
BUSYBOX=${BUSYBOX:-$here/../../shared/bases/busybox}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/ctx"
{
    echo "FROM busybox"
    for i in $(seq 1 "$STEPS"); do
        if ((i % 2)); then echo "RUN echo $i > /f$i"; else echo "COPY f /c$i"; fi
    done
} >"$work/ctx/Dockerfile"
echo data >"$work/ctx/f"

# One store per binary: the same cache, built once by each.
for which in before after; do
    bin=$BEFORE; [[ $which == after ]] && bin=$AFTER
    export KILN_ROOT=$work/store-$which
    "$bin" load -i "$BUSYBOX" -t busybox:latest >/dev/null
    "$bin" build -q "$work/ctx" >/dev/null
done

time_one() { # BIN STORE -> seconds
    local start end
    start=$(date +%s.%N)
    KILN_ROOT=$2 "$1" build -q --progress quiet "$work/ctx" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$work/before.txt"
: >"$work/after.txt"
for _ in $(seq 1 "$RUNS"); do
    time_one "$BEFORE" "$work/store-before" >>"$work/before.txt"
    time_one "$AFTER" "$work/store-after" >>"$work/after.txt"
done
b=$(median <"$work/before.txt")
a=$(median <"$work/after.txt")
printf 'cached rebuild, %s steps, median of %s: before %.3f s, after %.3f s, ratio %.3f\n' \
    "$STEPS" "$RUNS" "$b" "$a" "$(echo "$a / $b" | bc -l)"

export KILN_ROOT=$work/store-after
count() { find "$KILN_ROOT/builds" -name '*.json' | wc -l; }
rec=$(find "$KILN_ROOT/builds" -name '*.json' | sort | tail -1)
printf 'one record of %s steps: %s bytes\n' "$((STEPS + 1))" "$(stat -c %s "$rec")"
while (($(count) < 100)); do
    "$AFTER" build -q --progress quiet "$work/ctx" >/dev/null
done
for cmd in "builds" "builds show" "builds trace -o /dev/null"; do
    : >"$work/t.txt"
    for _ in $(seq 1 "$RUNS"); do
        start=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$AFTER" $cmd >/dev/null
        end=$(date +%s.%N)
        echo "$end - $start" | bc -l >>"$work/t.txt"
    done
    printf 'kiln %s with %s records, median of %s: %.3f s\n' \
        "$cmd" "$(count)" "$RUNS" "$(median <"$work/t.txt")"
done
