#!/bin/sh
# Renders the build graph of an example (default: examples/hello) to
# docs/graph.svg with `kiln build --print dag=svg`, in a temporary store
# with busybox loaded from the shared OCI layout (nothing is pulled).
#
#   docs/render-graph.sh [EXAMPLE] [KILN]
#
# Needs Graphviz's dot. KILN defaults to target/debug/kiln (built if missing).
set -eu
cd "$(dirname "$0")/.."
example=${1:-hello}
kiln=${2:-target/debug/kiln}
busybox=${BUSYBOX_LAYOUT:-../shared/bases/busybox}
[ -x "$kiln" ] || cargo build -q -p kiln-cli
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
KILN_ROOT=$store "$kiln" load -i "$busybox" -t busybox:latest >/dev/null
KILN_ROOT=$store "$kiln" build --print dag=svg "examples/$example" >docs/graph.svg
echo "docs/graph.svg: examples/$example"
