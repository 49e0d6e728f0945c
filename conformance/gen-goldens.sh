#!/bin/bash
# Makes (or with --check, re-checks) the goldens of kiln's own conformance cases in cases/ with
# real BuildKit v0.13, through the shared generator (../shared/conformance/gen-goldens.py, see
# its FORMAT.md) and the engine `../shared/tools/peers.sh` starts. The one difference from the
# shared cases: config.json also keeps `ArgsEscaped`.
#   conformance/gen-goldens.sh [--check] [-v] [CASE-GLOB ...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
generator=${KILN_SHARED:-$here/../../shared}/conformance/gen-goldens.py
export CASES_DIR=$here/cases
exec python3 - "$@" <<PY
import importlib.util, sys
spec = importlib.util.spec_from_file_location("gen_goldens", "$generator")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
gen.CONFIG_KEYS.append("ArgsEscaped")
gen.main()
PY
