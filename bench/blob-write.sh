#!/usr/bin/env bash
# Writing a big layer blob: a 300 MB, 50,000-file context tarred into a
# store blob through today's writer (`writer()` behind a 1 MiB BufWriter,
# as solver/src/layer.rs does) and through the pipelined writer
# (`writer_pipelined()`, `writer_with(PipelineOptions)`: a worker thread
# writes and hashes, writeback starts every 16 MiB), interleaved, medians
# of RUNS, with the ratio to today's writer. See bench/README.md.
#
# Usage: bench/blob-write.sh      (from anywhere)
# Environment: CONTEXT (default /tmp/kiln-blob-write-ctx, generated once
# by make-context.py with FILES files of SIZE_MB MB: 50000, 300), STORE
# (scratch store, default a temporary directory on the same disk as
# /tmp, removed at the end), RUNS (5), ONLY (just the variants whose name
# contains it, plus today's and the import rows), GZIP=1 (add two rows that
# gzip the tar into either writer, as an export does: about 15 s a run).
set -euo pipefail
cd "$(dirname "$0")/.."
CONTEXT=${CONTEXT:-/tmp/kiln-blob-write-ctx}
FILES=${FILES:-50000}
SIZE_MB=${SIZE_MB:-300}
if [ ! -f "$CONTEXT/Dockerfile" ]; then
  python3 bench/make-context.py "$CONTEXT" "$FILES" "$SIZE_MB"
fi
scratch=""
if [ -z "${STORE:-}" ]; then
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/kiln-blob-write.XXXXXX")
  STORE=$scratch/store
fi
trap '[ -z "$scratch" ] || rm -rf "$scratch"' EXIT
cargo build --release --quiet -p kiln-oci --example blob_write_bench
target=${CARGO_TARGET_DIR:-target}
echo "$(nproc) cores;$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2-)"
"$target/release/examples/blob_write_bench" "$CONTEXT" "$STORE"
