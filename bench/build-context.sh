#!/usr/bin/env bash
# Build benchmark: `COPY . /src` from a generated context of 50,000 files
# (300 MB): a cold build, a no-op rebuild, and a rebuild after one file
# changed. Reports wall time and peak RSS of each (GNU time).
#
# Usage: bench/build-context.sh        (from the repository root)
# Environment: KILN (default target/release/kiln), FILES (50000),
#   SIZE_MB (300), BENCH_WORK (scratch dir, default a fresh mktemp -d;
#   an existing context there is reused), KEEP=1 keeps it.
set -euo pipefail
KILN=${KILN:-target/release/kiln}
KILN=$(realpath "$KILN")
FILES=${FILES:-50000}
SIZE_MB=${SIZE_MB:-300}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${BENCH_WORK:-$(mktemp -d /tmp/kiln-bench-build.XXXXXX)}
[ "${KEEP:-0}" = 1 ] || [ -n "${BENCH_WORK:-}" ] || trap 'rm -rf "$work"' EXIT
ctx=$work/context
[ -f "$ctx/Dockerfile" ] || python3 "$here/make-context.py" "$ctx" "$FILES" "$SIZE_MB"
export KILN_ROOT=$work/store
rm -rf "$KILN_ROOT"

run() {
    local label=$1
    sync
    /usr/bin/time -f "%e %M" -o "$work/time" "$KILN" build -t bench:1 --progress quiet "$ctx"
    read -r secs rss < "$work/time"
    printf '%-22s %7.2f s   peak RSS %6.1f MB\n' "$label" "$secs" "$(echo "$rss / 1024" | bc -l)"
}

echo "context: $(find "$ctx" -type f | wc -l) files, $(du -sm --apparent-size "$ctx" | cut -f1) MB"
run "cold build"
run "no-op rebuild"
run "no-op rebuild (again)"
one=$(find "$ctx" -name 'f00042.bin')
printf 'changed' >> "$one"
run "one file changed"
