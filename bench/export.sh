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
# Real text: the system's C headers, over and over.
python3 - "$work/ctx/text.txt" "$half" <<'PY'
import os, sys
out, mb = sys.argv[1], int(sys.argv[2])
files = sorted(os.path.join(d, f) for d, _, fs in os.walk("/usr/include") for f in fs)
want = mb << 20
with open(out, "wb") as o:
    while o.tell() < want:
        for f in files:
            try:
                o.write(open(f, "rb").read())
            except OSError:
                pass
            if o.tell() >= want:
                break
    o.truncate(want)
PY
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
    KILN_ROOT=$work/store KILN_COMPRESSION_THREADS=$threads "$KILN" build --progress plain \
        -f "$work/Dockerfile" -o "type=docker,dest=$work/out.tar$options" \
        -o "type=registry,name=127.0.0.1:$port/bench:$name$options" "$work/ctx" 2> "$work/log"
    end=$(now)
    # The COPY step alone: copy, tar, hash and compress the layer.
    step=$(grep -A20 'COPY . /data' "$work/log" | grep -m1 -o 'DONE [0-9.]*s' | tr -dc '0-9.')
    echo "$(echo "$end - $start" | bc -l):$step"
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
med() { tr ' ' '\n' <<< "${results[$1]}" | grep . | cut -d: -f"${2:-1}" | median; }
cores=$(nproc)
printf '%-34s %14s %14s\n' "variant (${MB} MB layer)" "total s" "COPY step s"
printf '%-34s %14.2f %14.2f\n' "gzip level 6, 1 thread" "$(med gzip1)" "$(med gzip1 2)"
printf '%-34s %14.2f %14.2f\n' "gzip level 6, $cores threads (default)" "$(med gzipN)" "$(med gzipN 2)"
printf '%-34s %14.2f %14.2f\n' "zstd level 3" "$(med zstd)" "$(med zstd 2)"
printf '%-34s %14.2f\n' "cp -a of the context" "$(med copy)"
printf 'parallel gzip vs one thread: %.2fx for the whole build + export + push, %.2fx for the COPY step\n' \
    "$(echo "$(med gzip1) / $(med gzipN)" | bc -l)" "$(echo "$(med gzip1 2) / $(med gzipN 2)" | bc -l)"
