#!/usr/bin/env bash
# Layer compression throughput: flate2's single-threaded GzEncoder against
# kiln's parallel gzip (oci/src/compress.rs) on 1 thread and on every core,
# and zstd, over one input held in memory. Every variant also computes the
# sha256 of its input and output, as building a layer does.
#
# Usage: bench/compress.sh      (from the repository root)
# Environment: INPUT (default /tmp/kiln-compress-bench.bin, generated once:
# MB megabytes, half pseudo-random, half text), MB (500), RUNS (1; the
# fastest of RUNS runs counts), ONLY (run just the variants whose
# "name threads" contains it, e.g. ONLY="gzip level 6 2").
set -euo pipefail
cd "$(dirname "$0")/.."
INPUT=${INPUT:-/tmp/kiln-compress-bench.bin}
MB=${MB:-500}
cargo build --release --quiet -p kiln-oci --example compress_bench
target=${CARGO_TARGET_DIR:-target}
"$target/release/examples/compress_bench" "$INPUT" "$MB"
