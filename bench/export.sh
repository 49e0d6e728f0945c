#!/usr/bin/env bash
# Export and push of a 500 MB layer: `COPY . /data` of a context holding
# half random, half text data, built cold into a docker tarball and pushed
# to a local docker-registry in the same build, with the new layer
# compressed as gzip level 6 on one thread (KILN_COMPRESSION_THREADS=1),
# gzip level 6 on every core (the default) and zstd level 3. Every variant
# runs REPS times, interleaved; the median counts. A copy of the context
# (`cp -a`) is timed too: it is the part of the build no compression
# setting changes.
#
# Usage: bench/export.sh    (from the repository root; needs docker-registry)
# Environment: KILN (default target/release/kiln), MB (500), REPS (3).
set -euo pipefail
KILN=$(realpath "${KILN:-target/release/kiln}")
MB=${MB:-500}
REPS=${REPS:-3}
base=$(realpath ../shared/bases/busybox)
work=$(mktemp -d /tmp/kiln-bench-export.XXXXXX)
registry_pid=
cleanup() {
    [ -n "$registry_pid" ] && kill "$registry_pid" 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The context.
mkdir -p "$work/ctx"
half=$((MB / 2))
head -c "${half}M" /dev/urandom > "$work/ctx/random.bin"
{ yes "kiln exports layers; this line is text that compresses well, $RANDOM" || true; } | head -c "${half}M" > "$work/ctx/text.txt"
printf 'FROM busybox\nCOPY . /data\n' > "$work/Dockerfile"

# A registry on a free port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
log:
  level: error
YAML
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 50); do
    curl -fs "http://127.0.0.1:$port/v2/" > /dev/null 2>&1 && break
    sleep 0.1
done

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run() {
    local name=$1 threads=$2 options=$3 start end
    rm -rf "$work/store" "$work/out.tar"
    KILN_ROOT=$work/store "$KILN" load -i "$base" -t busybox:latest > /dev/null
    sync
    start=$(now)
    KILN_ROOT=$work/store KILN_COMPRESSION_THREADS=$threads "$KILN" build --progress quiet \
        -f "$work/Dockerfile" -o "type=docker,dest=$work/out.tar$options" \
        -o "type=registry,name=127.0.0.1:$port/bench:$name$options" "$work/ctx" > /dev/null
    end=$(now)
    echo "$end - $start" | bc -l
}

declare -A results
for r in $(seq 1 "$REPS"); do
    results[gzip1]+="$(run gzip1 1 "") "
    results[gzipN]+="$(run gzipN 0 "") "
    results[zstd]+="$(run zstd 0 ",compression=zstd") "
    rm -rf "$work/copy"
    start=$(now)
    cp -a "$work/ctx" "$work/copy"
    sync
    end=$(now)
    results[copy]+="$(echo "$end - $start" | bc -l) "
done
med() { tr ' ' '\n' <<< "${results[$1]}" | grep . | median; }
g1=$(med gzip1)
gn=$(med gzipN)
zs=$(med zstd)
cp=$(med copy)
cores=$(nproc)
printf '%-42s %8s\n' "variant (build + docker tar + push, ${MB} MB)" seconds
printf '%-42s %8.2f\n' "gzip level 6, 1 thread" "$g1"
printf '%-42s %8.2f\n' "gzip level 6, $cores threads (default)" "$gn"
printf '%-42s %8.2f\n' "zstd level 3" "$zs"
printf '%-42s %8.2f\n' "cp -a of the context (fixed part)" "$cp"
printf 'parallel gzip vs one thread: %.2fx end to end, %.2fx without the copy\n' \
    "$(echo "$g1 / $gn" | bc -l)" "$(echo "($g1 - $cp) / ($gn - $cp)" | bc -l)"
