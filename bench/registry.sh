#!/usr/bin/env bash
# Registry pull/push benchmark: kiln vs `skopeo copy`, against a local
# `docker-registry` (distribution) over plain HTTP on 127.0.0.1.
#
# Usage: bench/registry.sh            (from the repository root)
# Environment:
#   KILN        kiln binary                  (default: target/release/kiln)
#   RUNS        runs per measurement         (default: 3; the median is reported)
#   LAYERS      gzip layers in the image     (default: 4)
#   LAYER_MB    random MB per layer          (default: 50)
#   SEED        generator seed               (default: 20240601)
#   PORT        first registry port          (default: 5310; each registry gets the next one)
#   BENCH_WORK  scratch directory            (default: a fresh mktemp -d, removed at exit
#               unless KEEP=1; an existing image layout there is reused)
#   DOCKER_REGISTRY  registry binary         (default: docker-registry)
#
# Each measurement runs kiln and skopeo interleaved (kiln, skopeo, kiln,
# skopeo, ...) so both see the same background noise. `sync` runs before
# every timed command so dirty pages from the previous run are not written
# back during the next one; the time of a `sync` right after each command is
# recorded too ("+sync" columns): kiln fsyncs every blob it stores, skopeo's
# oci: destination does not, so "+sync" is the like-for-like durable time
# for pulls.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KILN=${KILN:-target/release/kiln}
RUNS=${RUNS:-3}
LAYERS=${LAYERS:-4}
LAYER_MB=${LAYER_MB:-50}
SEED=${SEED:-20240601}
PORT=${PORT:-5310}
DOCKER_REGISTRY=${DOCKER_REGISTRY:-docker-registry}

[[ -x $KILN ]] || { echo "kiln binary not found at $KILN (build it: cargo build --release -p kiln-cli, or set KILN)" >&2; exit 1; }
KILN=$(cd "$(dirname "$KILN")" && pwd)/$(basename "$KILN")
for tool in skopeo python3 curl "$DOCKER_REGISTRY"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

if [[ -n ${BENCH_WORK:-} ]]; then
    work=$BENCH_WORK
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")
fi

# Keep credentials and user config out of the way of both tools.
export DOCKER_CONFIG=$work/docker-config
export REGISTRY_AUTH_FILE=$work/docker-config/auth.json
export XDG_CONFIG_HOME=$work/xdg-config
mkdir -p "$DOCKER_CONFIG" "$XDG_CONFIG_HOME"
unset KILN_ROOT

# shellcheck source=bench/registry-lib.sh
source "$here/registry-lib.sh"
cleanup() {
    stop_registry
    if [[ -z ${BENCH_WORK:-} && ${KEEP:-0} != 1 ]]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# timed LABEL CMD...: runs CMD after a sync, appends "LABEL secs sync_secs"
# to the results file. Output of CMD goes to $work/last.log.
results=$work/results.tsv
: >"$results"
timed() {
    local label=$1; shift
    sync
    local t0=$EPOCHREALTIME
    if ! "$@" >"$work/last.log" 2>&1; then
        echo "FAILED: $*" >&2
        cat "$work/last.log" >&2
        exit 1
    fi
    local t1=$EPOCHREALTIME
    sync
    local t2=$EPOCHREALTIME
    local secs sync_secs
    secs=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
    sync_secs=$(python3 -c "print(f'{$t2 - $t1:.3f}')")
    printf '%s\t%s\t%s\n' "$label" "$secs" "$sync_secs" >>"$results"
    printf '  %-12s %8ss  (+sync %ss)\n' "$label" "$secs" "$sync_secs"
}

sha256_of() { sha256sum | awk '{print "sha256:" $1}'; }

# --- the image -------------------------------------------------------------
layout=$work/layout
if [[ ! -f $layout/index.json ]]; then
    echo "Generating image: $LAYERS layers x $LAYER_MB MB random data (seed $SEED)..."
    rm -rf "$layout"
    python3 "$here/make-image.py" "$layout" --layers "$LAYERS" --layer-mb "$LAYER_MB" --seed "$SEED" --tag bench >"$work/image.env"
fi
[[ -f $work/image.env ]] || python3 - "$layout" >"$work/image.env" <<'EOF'
import json, os, sys
root = sys.argv[1]
idx = json.load(open(os.path.join(root, "index.json")))
d = idx["manifests"][0]["digest"]
m = json.load(open(os.path.join(root, "blobs", "sha256", d.split(":")[1])))
print(f"MANIFEST_DIGEST={d}")
print(f"BLOB_BYTES={m['config']['size'] + sum(l['size'] for l in m['layers'])}")
EOF
# shellcheck disable=SC1091
source "$work/image.env"
echo "Image: manifest $MANIFEST_DIGEST, $BLOB_BYTES blob bytes (config + layers)"
echo "kiln: $KILN"
echo "skopeo: $(skopeo --version)"
echo "registry: $("$DOCKER_REGISTRY" --version 2>&1 | head -1)"
echo "runs: $RUNS, work dir: $work"

# --- push --------------------------------------------------------------------
# A kiln store holding the image. Every push goes to a FRESH registry (new
# storage directory) and a fresh repository name, so no blob is skipped
# (HEAD) or mounted; the store's sources/ records are dropped too so kiln
# does not even try a cross-repository mount.
push_store=$work/push-store
rm -rf "$push_store"
"$KILN" --root "$push_store" load -i "$layout" -t bench >/dev/null

echo
echo "Push ($RUNS runs each, fresh registry per run):"
for n in $(seq "$RUNS"); do
    stop_registry
    rm -rf "$work/reg-push-kiln-$n"
    start_registry "$work/reg-push-kiln-$n"
    rm -rf "$push_store/sources"
    timed kiln-push "$KILN" --root "$push_store" push bench "$reg/kiln/bench:$n"
    if ! grep -q "$((LAYERS + 1)) blobs uploaded .*0 mounted, 0 already there" "$work/last.log"; then
        echo "kiln push did not upload every blob:" >&2
        cat "$work/last.log" >&2
        exit 1
    fi
    got=$(skopeo inspect --raw --tls-verify=false "docker://$reg/kiln/bench:$n" | sha256_of)
    if [[ $got != "$MANIFEST_DIGEST" ]]; then
        echo "kiln push: registry manifest $got != layout manifest $MANIFEST_DIGEST" >&2
        exit 1
    fi
    stop_registry
    rm -rf "$work/reg-push-kiln-$n"

    rm -rf "$work/reg-push-skopeo-$n"
    start_registry "$work/reg-push-skopeo-$n"
    timed skopeo-push skopeo copy -q --dest-tls-verify=false \
        "oci:$layout:bench" "docker://$reg/skopeo/bench:$n"
    got=$(skopeo inspect --raw --tls-verify=false "docker://$reg/skopeo/bench:$n" | sha256_of)
    if [[ $got != "$MANIFEST_DIGEST" ]]; then
        echo "skopeo push: registry manifest $got != layout manifest $MANIFEST_DIGEST" >&2
        exit 1
    fi
    stop_registry
    rm -rf "$work/reg-push-skopeo-$n"
done
rm -rf "$push_store"

# --- pull --------------------------------------------------------------------
# One registry holding the image; each pull goes into an EMPTY kiln store or
# an empty oci: directory.
echo
echo "Pull ($RUNS runs each, empty destination per run):"
start_registry "$work/reg-pull"
skopeo copy -q --dest-tls-verify=false "oci:$layout:bench" "docker://$reg/bench/image:1"
for n in $(seq "$RUNS"); do
    root=$work/pull-root-$n
    rm -rf "$root"
    timed kiln-pull "$KILN" --root "$root" pull "$reg/bench/image:1"
    if ! "$KILN" --root "$root" images | grep -Eq "^$reg/bench/image +1 +${MANIFEST_DIGEST:7:12} "; then
        echo "kiln pull: kiln images does not list $reg/bench/image:1:" >&2
        "$KILN" --root "$root" images >&2
        exit 1
    fi
    rm -rf "$root"

    dest=$work/pull-oci-$n
    rm -rf "$dest"
    timed skopeo-pull skopeo copy -q --src-tls-verify=false \
        "docker://$reg/bench/image:1" "oci:$dest:x"
    if ! grep -q "${MANIFEST_DIGEST#sha256:}" "$dest/index.json"; then
        echo "skopeo pull: $dest/index.json does not list $MANIFEST_DIGEST" >&2
        exit 1
    fi
    rm -rf "$dest"
done
stop_registry

# --- report ------------------------------------------------------------------
echo
python3 - "$results" "$BLOB_BYTES" <<'EOF'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines() if l]
total = int(sys.argv[2])
runs, syncs = {}, {}
for label, secs, sync_secs in rows:
    runs.setdefault(label, []).append(float(secs))
    syncs.setdefault(label, []).append(float(secs) + float(sync_secs))
med = {k: statistics.median(v) for k, v in runs.items()}
dur = {k: statistics.median(v) for k, v in syncs.items()}
mbs = lambda s: total / 1e6 / s
print(f"Blob bytes: {total} ({total/1e6:.1f} MB); medians of {len(next(iter(runs.values())))} runs")
print()
print("| operation | runs (s) | median s | MB/s | median s +sync | MB/s +sync |")
print("|---|---|---|---|---|---|")
for k in ["kiln-push", "skopeo-push", "kiln-pull", "skopeo-pull"]:
    if k not in med:
        continue
    r = ", ".join(f"{x:.2f}" for x in runs[k])
    print(f"| {k} | {r} | {med[k]:.2f} | {mbs(med[k]):.0f} | {dur[k]:.2f} | {mbs(dur[k]):.0f} |")
print()
for op in ["push", "pull"]:
    k, s = f"kiln-{op}", f"skopeo-{op}"
    if k in med and s in med:
        print(f"{op}: kiln/skopeo throughput ratio {med[s]/med[k]:.2f} "
              f"(+sync: {dur[s]/dur[k]:.2f})")
EOF
