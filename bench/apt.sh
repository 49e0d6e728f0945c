#!/usr/bin/env bash
# dpkg in the sandbox: the RUN process of an `apt-get install` of PACKAGES
# on the Debian base, per runtime (kiln's built-in sandbox, runc, crun),
# cold, REPS times, the runtimes interleaved; reports medians.
#
# Two scenarios:
#   apt   `apt-get update && apt-get install` from the Debian mirror (the
#         network adds noise);
#   debs  the same packages pre-downloaded (once, before timing) and COPYed
#         in, installed with `apt-get install ./*.deb`: apt orders them and
#         runs dpkg, no network.
# The RUN itself prints its wall time (date, inside the sandbox) and the
# CPU time of its children (`times`), so the figures are the process's,
# without kiln's diff, tar and compression of the layer. To time the
# overlay as mounted before `volatile`, set KILN_RUNTIME_FALLBACKS=volatile.
#
# Usage: bench/apt.sh     (from the repository root, as root)
# Environment: KILN (default target/release/kiln), REPS (5),
#              RUNTIMES ("builtin runc crun"), SCENARIOS ("apt debs"),
#              PACKAGES ("python3 perl vim-nox curl": 40 packages,
#              26 MB of downloads, 111 MB installed),
#              KILN_ENGINE_DEBIAN (LAYOUT:TAG of a Debian base, default
#              target/engine/debian:bookworm, which .ci/run makes),
#              EXTRA (more `kiln build` flags for every build),
#              DEBS (a directory to keep the downloaded .debs in between runs).
set -euo pipefail
KILN=$(realpath "${KILN:-target/release/kiln}")
REPS=${REPS:-5}
RUNTIMES=${RUNTIMES:-builtin runc crun}
SCENARIOS=${SCENARIOS:-apt debs}
PACKAGES=${PACKAGES:-python3 perl vim-nox curl}
DEBIAN=${KILN_ENGINE_DEBIAN:-target/engine/debian:bookworm}
EXTRA=${EXTRA:-}
layout=$(realpath "${DEBIAN%:*}")
tag=${DEBIAN##*:}
[ -f "$layout/index.json" ] || { echo "no OCI layout at $layout (set KILN_ENGINE_DEBIAN)" >&2; exit 1; }

work=$(mktemp -d /tmp/kiln-bench-apt.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
base="debian:bookworm=oci-layout://$layout:$tag"

timed_run() { # the RUN's script: wall ms and children's CPU seconds
    # shellcheck disable=SC2016 # expanded by the RUN's shell
    printf 's=$(date +%%s%%N); %s; r=$?; e=$(date +%%s%%N); echo "RUNTIME $(( (e - s) / 1000000 ))"; echo CPUTIME; times; exit $r' "$1"
}

mkdir -p "$work/apt" "$work/debs/debs" "$work/dl"
cat > "$work/apt/Dockerfile" <<EOF
FROM debian:bookworm
ARG BUST
RUN $(timed_run "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES")
EOF

# The .debs, downloaded once through kiln itself (kept in DEBS when set).
debs=${DEBS:-$work/dl/out}
if ! ls "$debs"/*.deb > /dev/null 2>&1; then
    cat > "$work/dl/Dockerfile" <<EOF
FROM debian:bookworm AS dl
RUN apt-get update -q && apt-get install -y -q -d --no-install-recommends $PACKAGES
FROM scratch
COPY --from=dl /var/cache/apt/archives/*.deb /
EOF
    KILN_ROOT=$work/store-dl "$KILN" build --progress quiet --build-context "$base" \
        -o "type=local,dest=$debs" "$work/dl" > /dev/null
    rm -rf "$work/store-dl"
fi
cp "$debs"/*.deb "$work/debs/debs/"
echo "debs: $(find "$work/debs/debs" -name '*.deb' | wc -l) files, $(du -sh "$work/debs/debs" | cut -f1)"
cat > "$work/debs/Dockerfile" <<EOF
FROM debian:bookworm
ARG BUST
COPY debs/ /tmp/debs/
RUN $(timed_run "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /tmp/debs/*.deb && rm -rf /tmp/debs")
EOF

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One cold build (fresh store): "wall_ms user_s sys_s".
build() {
    local scenario=$1 runtime=$2 rep=$3 out
    rm -rf "$work/store"
    # shellcheck disable=SC2086
    out=$(KILN_ROOT=$work/store "$KILN" build --runtime "$runtime" --progress plain \
        --build-context "$base" --build-arg "BUST=$runtime-$rep" $EXTRA "$work/$scenario" 2>&1) || {
        echo "$out" | tail -n 30 >&2
        return 1
    }
    local ms cpu
    ms=$(echo "$out" | sed -n 's/.*RUNTIME \([0-9]*\).*/\1/p' | tail -n 1)
    # `times`' second line: children's user and system time, "0m1.23s 0m0.45s".
    # (`times` runs in the RUN's shell itself: in a subshell it would
    # count no children.)
    cpu=$(echo "$out" | awk '/CPUTIME$/ { n = NR } n && NR == n + 2 {
        for (i = NF - 1; i <= NF; i++) { split($i, t, "m"); sub("s", "", t[2]); printf "%.2f ", t[1] * 60 + t[2] } }')
    echo "$ms $cpu"
}

declare -A wall user sys
for rep in $(seq 1 "$REPS"); do
    for scenario in $SCENARIOS; do
        for runtime in $RUNTIMES; do
            res=$(build "$scenario" "$runtime" "$rep")
            read -r ms u s <<< "$res"
            echo "rep $rep $scenario $runtime: ${ms} ms (children: user ${u} s, sys ${s} s; load $(cut -d' ' -f1 /proc/loadavg))"
            wall[$scenario.$runtime]+="$ms "
            user[$scenario.$runtime]+="$u "
            sys[$scenario.$runtime]+="$s "
        done
    done
done
rm -rf "$work/store"

echo
echo "| scenario | runtime | RUN wall (median of $REPS) | user CPU | sys CPU |"
echo "|---|---|---|---|---|"
for scenario in $SCENARIOS; do
    for runtime in $RUNTIMES; do
        k=$scenario.$runtime
        printf '| %s | %s | %.2f s | %s s | %s s |\n' "$scenario" "$runtime" \
            "$(echo "${wall[$k]}" | tr ' ' '\n' | grep . | median | awk '{print $1 / 1000}')" \
            "$(echo "${user[$k]}" | tr ' ' '\n' | grep . | median)" \
            "$(echo "${sys[$k]}" | tr ' ' '\n' | grep . | median)"
    done
done
