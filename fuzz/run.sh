#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60), one after
# the other, on one core. Usage:
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz --version 0.13.1`);
# stable Rust works through RUSTC_BOOTSTRAP=1, set here. Seeds come from
# fuzz/seeds.sh (rerun when fuzz/seeds/ is missing) and from
# fuzz/regressions/TARGET (inputs that crashed it once); what a run finds new is
# kept in fuzz/corpus/TARGET, crashes in fuzz/artifacts/TARGET, the logs in
# fuzz/artifacts/TARGET.log. Exits 1 if any target panicked, crashed, ran out
# of memory (-rss_limit_mb=2048) or took over 10 s on one input.
#
# FUZZ_KEEP_GOING=1 runs libFuzzer in fork mode instead, which records each
# crash in fuzz/artifacts/TARGET and goes on (for long runs past known bugs).
#
# As root the targets run in a private mount namespace where everything but
# fuzz/corpus, fuzz/artifacts and a scratch TMPDIR is read-only, so a tar
# entry that escaped its temporary directory cannot write to the host.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-60}"
shift || true
all=(parse_dockerfile shell_expand lower dockerignore unpack_layer add_archive load_archive)
targets=("${@:-${all[@]}}")

seeds_of() {
    case "$1" in
    parse_dockerfile | lower) echo dockerfile ;;
    unpack_layer) echo tar ;;
    *) echo "$1" ;;
    esac
}

cd "$fuzz"
[ -d seeds ] || ./seeds.sh
# Release code with debug assertions (overflow checks) on, cargo-fuzz's
# default; no sanitizer unless FUZZ_SANITIZER=address: kiln's unsafe code
# is libc calls, and a sanitizer halves the speed of the safe code.
# FUZZ_TARGET_DIR moves the build out of fuzz/target (CI keeps it in target/).
build=(cargo fuzz build --sanitizer "${FUZZ_SANITIZER:-none}")
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
    build+=(--target-dir "$FUZZ_TARGET_DIR")
fi
if [ $# -eq 0 ]; then
    RUSTC_BOOTSTRAP=1 "${build[@]}"
else
    for t in "${targets[@]}"; do
        RUSTC_BOOTSTRAP=1 "${build[@]}" "$t"
    done
fi
bin="${FUZZ_TARGET_DIR:-$fuzz/target}/x86_64-unknown-linux-gnu/release"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    scratch="$(mktemp -d)"
    args=(
        "-artifact_prefix=$fuzz/artifacts/$t/" -max_total_time="$seconds"
        -rss_limit_mb=2048 -timeout=10
        "corpus/$t" "seeds/$(seeds_of "$t")"
    )
    # Inputs that once crashed a target stay in its corpus for good.
    if [ -d "regressions/$t" ]; then
        args+=("regressions/$t")
    fi
    case "$t" in
    parse_dockerfile | lower) args=(-dict=dockerfile.dict "${args[@]}") ;;
    shell_expand) args=(-dict=shell.dict "${args[@]}") ;;
    esac
    # Plain libFuzzer is one process on one thread; -fork=1 runs one child
    # at a time.
    if [ "${FUZZ_KEEP_GOING:-}" = 1 ]; then
        args=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 "${args[@]}")
    fi
    run=("$bin/$t" "${args[@]}")
    if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
        # shellcheck disable=SC2016 # expanded by the inner shell
        run=(unshare --mount --propagation private sh -c '
            mount --bind "$1" "$1" && mount --bind "$2" "$2" && mount --bind "$3" "$3" &&
            mount -o remount,bind,ro / && shift 3 && exec "$@"' ro-root
            "$fuzz/corpus/$t" "$fuzz/artifacts/$t" "$scratch" "$bin/$t" "${args[@]}")
    fi
    echo "== $t: ${seconds}s"
    before="$(find "artifacts/$t" -type f | wc -l)"
    # Fork mode exits 0 after crashes; the new files in artifacts/ tell.
    if TMPDIR="$scratch" nice -n 19 "${run[@]}" >"artifacts/$t.log" 2>&1 &&
        [ "$(find "artifacts/$t" -type f | wc -l)" = "$before" ]; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
    fi
    rm -rf "$scratch"
    # libFuzzer's last status line (#EXECS: cov: ... corp: ...).
    echo "   $status: $(grep -E '^#[0-9]+' "artifacts/$t.log" | tail -n1 | cut -c1-100)"
    if [ "$status" = FAILED ]; then
        grep -E 'ERROR: libFuzzer|SUMMARY|panicked at|Test unit written' "artifacts/$t.log" | head -n 8 | sed 's/^/   /'
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found problems in: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
