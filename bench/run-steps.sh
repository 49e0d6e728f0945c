#!/usr/bin/env bash
# Per-RUN overhead: a Dockerfile of N `RUN true` steps on busybox, built cold
# (empty store, base loaded from ../shared/bases/busybox) with each runtime
# (kiln's built-in sandbox, runc, crun); reports milliseconds per step, the
# median of REPS cold builds. For the external runtimes it also measures
# their own start-up cost: N plain `runc run` / `crun run` of a trivial
# bundle on the same busybox rootfs (crun as kiln runs it: cgroups off, the
# hybrid cgroup v2 mount hidden), so the figures show what kiln adds.
#
# The built-in runtime is measured in each isolation of ISOLATIONS: the
# sandbox, and chroot (copy snapshots, for containers that refuse new
# namespaces; see the README's isolation table).
#
# Usage: bench/run-steps.sh     (from the repository root, as root)
# Environment: KILN (default target/release/kiln), STEPS (50), REPS (3),
#              RUNTIMES ("builtin runc crun"), ISOLATIONS ("sandbox chroot").
set -euo pipefail
KILN=$(realpath "${KILN:-target/release/kiln}")
STEPS=${STEPS:-50}
REPS=${REPS:-3}
RUNTIMES=${RUNTIMES:-builtin runc crun}
ISOLATIONS=${ISOLATIONS:-sandbox chroot}
base=$(realpath ../shared/bases/busybox)
work=$(mktemp -d /tmp/kiln-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
{
    echo "FROM busybox"
    for i in $(seq 1 "$STEPS"); do echo "RUN true"; done
} > "$work/ctx/Dockerfile"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cold_build() {
    local runtime=$1 isolation=$2 start end
    rm -rf "$work/store"
    KILN_ROOT=$work/store "$KILN" load -i "$base" -t busybox:latest > /dev/null
    start=$(now)
    KILN_ROOT=$work/store "$KILN" build --runtime "$runtime" --isolation "$isolation" --progress quiet -t steps:1 "$work/ctx"
    end=$(now)
    echo "($end - $start) * 1000 / $STEPS" | bc -l
}

# A bundle for the runtimes' own start-up cost.
bundle=$work/bundle
mkdir -p "$bundle"
KILN_ROOT=$work/store0 "$KILN" load -i "$base" -t busybox:latest > /dev/null
printf 'FROM busybox\n' > "$work/ctx0"
KILN_ROOT=$work/store0 "$KILN" build -f "$work/ctx0" --progress quiet -o "type=local,dest=$bundle/rootfs" "$work/ctx"
raw_runs() {
    local runtime=$1
    (cd "$bundle" && rm -f config.json && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)
    local script="start=\$(date +%s.%N); for i in \$(seq 1 $STEPS); do $runtime"
    case $runtime in
        crun) script="[ -d /sys/fs/cgroup/unified ] && mount -t tmpfs -o ro none /sys/fs/cgroup/unified; $script --cgroup-manager=disabled" ;;
    esac
    script="$script run --bundle $bundle bench-\$i >/dev/null; done; end=\$(date +%s.%N); echo \"(\$end - \$start) * 1000 / $STEPS\" | bc -l"
    unshare -m sh -c "$script"
}

printf '%-16s %14s %20s\n' runtime "kiln ms/step" "runtime alone ms/run"
for runtime in $RUNTIMES; do
    if [ "$runtime" != builtin ] && ! command -v "$runtime" > /dev/null; then
        echo "$runtime: not installed"
        continue
    fi
    isolations=sandbox
    [ "$runtime" = builtin ] && isolations=$ISOLATIONS
    for isolation in $isolations; do
        ms=$(for r in $(seq 1 "$REPS"); do cold_build "$runtime" "$isolation"; done | median)
        raw="-"
        if [ "$runtime" != builtin ]; then
            raw=$(for r in $(seq 1 "$REPS"); do raw_runs "$runtime"; done | median)
            raw=$(printf '%.1f' "$raw")
        fi
        printf '%-16s %14.1f %20s\n' "$runtime/$isolation" "$ms" "$raw"
    done
done
