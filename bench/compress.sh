#!/usr/bin/env bash
# Layer compression throughput: flate2's single-threaded GzEncoder against
# kiln's parallel gzip (oci/src/compress.rs) on 1 thread and on every core,
# zstd, and an uncompressed layer, over one input held in memory; then the
# same on random bytes (the incompressible path: stored blocks). Every
# variant also computes the sha256 of its input and output, as building a
# layer does.
#
# Usage: bench/compress.sh      (from the repository root)
# Environment: INPUT (default /tmp/kiln-compress-bench.bin, generated once:
# MB megabytes, half pseudo-random, half text), RANDOM_INPUT (default
# /tmp/kiln-compress-bench-random.bin, MB megabytes from /dev/urandom;
# RANDOM_INPUT=none skips it), MB (500), RUNS (1; the
# fastest of RUNS runs counts), ONLY (run just the variants whose
# "name threads" contains it, e.g. ONLY="gzip level 6 2").
set -euo pipefail
cd "$(dirname "$0")/.."
INPUT=${INPUT:-/tmp/kiln-compress-bench.bin}
MB=${MB:-500}
cargo build --release --quiet -p kiln-oci --example compress_bench
target=${CARGO_TARGET_DIR:-target}
"$target/release/examples/compress_bench" "$INPUT" "$MB"
RANDOM_INPUT=${RANDOM_INPUT:-/tmp/kiln-compress-bench-random.bin}
if [ "$RANDOM_INPUT" != none ]; then
  if [ "$(stat -c %s "$RANDOM_INPUT" 2>/dev/null || echo 0)" != $((MB << 20)) ]; then
    head -c $((MB << 20)) /dev/urandom >"$RANDOM_INPUT"
  fi
  echo
  INPUT_KIND="random bytes" "$target/release/examples/compress_bench" "$RANDOM_INPUT" "$MB"
fi
