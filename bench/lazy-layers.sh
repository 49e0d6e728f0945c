#!/usr/bin/env bash
# Lazy layer compression: a RUN that writes a ~100 MB layer (50 MB of
# random bytes, 50 MB of text) on busybox, built cold (empty store, base
# loaded from ../shared/bases/busybox) by two kiln binaries, interleaved,
# the median of REPS builds each. Scenarios:
#   local  `kiln build -t` (the layer stays in the store: no gzip at all)
#   oci    `-o type=oci,dest=…` after a further `RUN sleep 2` (the layer
#          is gzip-compressed in the background while the sleep runs)
# Prints the whole build's seconds and the big RUN step's seconds (as
# `--progress plain` reports it: process plus the layer's tar, hashes,
# compression when the step does it, and syncs).
#
# Usage: bench/lazy-layers.sh   (from the repository root, as root)
# Environment: BEFORE (default /work/main/target/release/kiln), AFTER
#              (target/release/kiln), REPS (5), SCENARIOS ("local oci").
set -euo pipefail
BEFORE=$(realpath "${BEFORE:-/work/main/target/release/kiln}")
AFTER=$(realpath "${AFTER:-target/release/kiln}")
REPS=${REPS:-5}
SCENARIOS=${SCENARIOS:-local oci}
base=$(realpath ../shared/bases/busybox)
work=$(mktemp -d /tmp/kiln-bench-lazy.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/local" "$work/oci"
big='RUN head -c 50000000 /dev/urandom > /random && seq 1 6500000 > /text'
printf 'FROM busybox\n%s\n' "$big" > "$work/local/Dockerfile"
printf 'FROM busybox\n%s\nRUN sleep 2\n' "$big" > "$work/oci/Dockerfile"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Prints "total step" seconds of one cold build.
cold_build() {
    local kiln=$1 scenario=$2 start end log out
    rm -rf "$work/store" "$work/out.tar"
    KILN_ROOT=$work/store "$kiln" load -i "$base" -t busybox:latest > /dev/null
    case $scenario in
        local) out=(-t lazy:1) ;;
        oci) out=(-o "type=oci,dest=$work/out.tar") ;;
    esac
    sync
    start=$(now)
    log=$(KILN_ROOT=$work/store "$kiln" build --progress plain "${out[@]}" "$work/$scenario" 2>&1)
    end=$(now)
    # The step's number, then its DONE line.
    local n
    n=$(echo "$log" | awk '/RUN head -c/ {sub("#", "", $1); print $1; exit}')
    local step
    step=$(echo "$log" | awk -v n="#$n" '$1 == n && $2 == "DONE" {sub("s", "", $3); print $3; exit}')
    echo "$(echo "$end - $start" | bc -l) $step"
}

printf '%-8s %-7s %10s %10s\n' scenario kiln "total s" "RUN step s"
for scenario in $SCENARIOS; do
    : > "$work/before"
    : > "$work/after"
    for r in $(seq 1 "$REPS"); do
        cold_build "$BEFORE" "$scenario" >> "$work/before"
        cold_build "$AFTER" "$scenario" >> "$work/after"
    done
    for which in before after; do
        total=$(awk '{print $1}' "$work/$which" | median)
        step=$(awk '{print $2}' "$work/$which" | median)
        printf '%-8s %-7s %10.2f %10.2f\n' "$scenario" "$which" "$total" "$step"
    done
done
