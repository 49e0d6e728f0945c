#!/usr/bin/env bash
# Side by side: kiln against BuildKit v0.13 (Docker 26 + buildx 0.13, started
# by ../shared/tools/peers.sh), the same scenarios with the same method, one
# Markdown table of medians at the end. See bench/README.md ("Side by side
# with BuildKit") for the method and the latest figures.
#
# Usage: bench/compare.sh        (from the repository root, as root)
# Environment:
#   KILN      kiln binary (target/release/kiln)
#   RUNS      timed runs per tool and row (3); the median counts
#   ROWS      rows to run, in order ("apt stages copy-cold copy-one copy-noop
#             big warm noop steps lint lint-repeat")
#   OUT       also write the table there (/tmp/kiln-compare-DATE.md)
#   BUILDKIT  auto (use Docker 26 when it answers), or 0 (kiln only)
#   DOCKER_HOST_26 the Docker 26 socket (unix:///run/docker26.sock)
#   DOCKER    the docker client (docker on PATH)
#   REGISTRY  registry without auth for the bases and the push (127.0.0.1:5000)
#   DEBIAN    OCI layout of the Debian bookworm base (target/engine/debian,
#             else the main worktree's; .ci/run makes it)
#   BUSYBOX   OCI layout of busybox (../shared/bases/busybox)
#   MIRROR    Debian mirror for the apt row (the host's, from
#             /etc/apt/sources.list.d/debian.sources)
#   STAGE_MB  megabytes each stage of the `stages` row hashes (calibrated to
#             about 3 CPU-seconds when unset)
#   CORPUS    directory of the lint row's Dockerfiles (../shared/corpus/realworld)
#   CI_TOOLS  directory put first on PATH for kiln lint (target/ci-tools/bin,
#             where ShellCheck 0.11 is)
#   HADOLINT  hadolint binary (the one on PATH, through pyenv's shim)
#   WORK      scratch directory (a fresh mktemp -d); KEEP=1 keeps it
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
KILN=$(realpath "${KILN:-$repo/target/release/kiln}")
RUNS=${RUNS:-3}
ROWS=${ROWS:-apt stages copy-cold copy-one copy-noop big warm noop steps lint lint-repeat}
OUT=${OUT:-/tmp/kiln-compare-$(date +%Y%m%d-%H%M%S).md}
BUILDKIT=${BUILDKIT:-auto}
DOCKER_HOST_26=${DOCKER_HOST_26:-unix:///run/docker26.sock}
DOCKER=${DOCKER:-docker}
REGISTRY=${REGISTRY:-127.0.0.1:5000}
BUSYBOX=${BUSYBOX:-$(realpath -m "$repo/../shared/bases/busybox")}
CORPUS=${CORPUS:-$(realpath -m "$repo/../shared/corpus/realworld")}
CI_TOOLS=${CI_TOOLS:-$repo/target/ci-tools/bin}

die() {
    echo "compare.sh: $*" >&2
    exit 1
}

valid_row() {
    case $1 in
        apt | stages | copy-cold | copy-one | copy-noop | big | warm | noop | steps | lint | lint-repeat) return 0 ;;
        *) return 1 ;;
    esac
}
for row in $ROWS; do
    valid_row "$row" || die "ROWS: unknown row '$row' (apt stages copy-cold copy-one copy-noop big warm noop steps lint lint-repeat)"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS: '$RUNS' is not a positive number"
[[ -x $KILN ]] || die "KILN: $KILN is not an executable (cargo build --release -p kiln-cli)"
[[ -w /proc/sys/vm/drop_caches ]] || die "needs root: /proc/sys/vm/drop_caches is not writable"
for tool in skopeo python3 /usr/bin/time; do
    command -v "$tool" > /dev/null || die "$tool is missing"
done
wants() { [[ " $ROWS " == *" $1 "* ]]; }
wants_any() {
    local r
    for r in "$@"; do wants "$r" && return 0; done
    return 1
}

# The Debian base: ours, or the one .ci/run made in the main worktree.
if [[ -z ${DEBIAN:-} ]]; then
    DEBIAN=$repo/target/engine/debian
    common=$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir 2> /dev/null || true)
    if [[ ! -f $DEBIAN/index.json && -n $common && -f $common/../target/engine/debian/index.json ]]; then
        DEBIAN=$(realpath "$common/../target/engine/debian")
    fi
fi
if wants apt && [[ ! -f $DEBIAN/index.json ]]; then
    die "DEBIAN: no OCI layout at $DEBIAN; make it as .ci/run does (debootstrap --variant=minbase bookworm, then umoci: see the 'engine' block of .ci/run), or leave out the apt row"
fi
[[ -f $BUSYBOX/index.json ]] || die "BUSYBOX: no OCI layout at $BUSYBOX"

if [[ -z ${MIRROR:-} ]]; then
    MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2> /dev/null || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

# BuildKit v0.13: the Docker 26 engine of peers.sh, with buildx 0.13.
bk() { DOCKER_HOST=$DOCKER_HOST_26 "$DOCKER" "$@"; }
have_bk=0
bk_version=
if [[ $BUILDKIT != 0 ]] && bk info > /dev/null 2>&1 && bk buildx version > /dev/null 2>&1; then
    have_bk=1
    bk_version="Docker $(bk version -f '{{.Server.Version}}' 2> /dev/null), $(bk buildx version | awk '{print $1, $2}')"
elif [[ $BUILDKIT != 0 ]]; then
    echo "compare.sh: no Docker 26 answers on $DOCKER_HOST_26 (run ../shared/tools/peers.sh): kiln only" >&2
fi

if [[ -z ${HADOLINT:-} ]]; then
    HADOLINT=$( (pyenv which hadolint 2> /dev/null || command -v hadolint 2> /dev/null) | head -n1 || true)
fi
have_hadolint=0
[[ -n $HADOLINT && -x $HADOLINT ]] && have_hadolint=1

work=${WORK:-$(mktemp -d /tmp/kiln-compare.XXXXXX)}
mkdir -p "$work"
work=$(realpath "$work")
# shellcheck disable=SC2329 # the EXIT trap calls it
cleanup() {
    # Leave Docker 26 as the cold rows leave it: no build cache, none of our images.
    if [[ $have_bk == 1 ]]; then bk_cold || true; fi
    if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

stamp=$(date +%s)
log=$work/log
mkdir -p "$log"

# ---------------------------------------------------------------------------
# Method

# Before every timed command: write back and drop the page cache, then read
# the context (or the linted files) back, so both tools start with it cached
# and nothing else.
drop_caches() {
    local dir=$1
    sync
    echo 3 > /proc/sys/vm/drop_caches
    find "$dir" -type f -print0 | xargs -0 -r cat > /dev/null
}

now() { date +%s.%N; }

# timed NAME CMD...: runs the program CMD once, its output to $log/NAME and
# $log/NAME.err; sets $secs (wall clock) and $rss_mb (peak RSS of the largest
# process of CMD's tree, GNU time); returns CMD's status.
timed() {
    local name=$1 start end status=0
    shift
    start=$(now)
    /usr/bin/time -f '%M' -o "$work/rss" "$@" > "$log/$name" 2> "$log/$name.err" || status=$?
    end=$(now)
    secs=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", e - s}')
    rss_mb=$(awk '/^[0-9]+$/ {printf "%.0f", $1 / 1024}' "$work/rss")
    return "$status"
}

median() {
    sort -g | awk '{a[NR] = $1} END {
        if (NR == 0) exit
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# The rows that share a build: copy-* use one context, store and image, so
# do warm and noop.
group() {
    case $1 in
        copy-*) echo copy ;;
        noop) echo warm ;;
        *) echo "$1" ;;
    esac
}
kiln_root() { echo "$work/store-$(group "$1")"; }
kiln() {
    local row=$1
    shift
    KILN_ROOT=$(kiln_root "$row") "$KILN" "$@"
}

# The images made by the BuildKit side: kiln-compare/* in Docker 26, and
# the bases as pulled from $REGISTRY (a run of an earlier version).
bk_remove_images() {
    local refs
    refs=$(bk image ls --format '{{.Repository}}:{{.Tag}}' |
        awk -v r="$REGISTRY/bench/" 'index($0, "kiln-compare/") == 1 || index($0, r) == 1')
    if [[ -n $refs ]]; then
        # shellcheck disable=SC2086
        bk image rm -f $refs > /dev/null
    fi
}

# A cold start for BuildKit: no build cache (so the base is pulled again and
# the context sent in full) and none of our images.
bk_cold() {
    bk buildx prune -af > /dev/null
    bk_remove_images
    # Images our builds left untagged still hold their layers, and the base's
    # with them: the engine's layer store would serve the base without a pull.
    bk image prune -f > /dev/null
}

# bk_shared_bases: warns when an image of Docker 26 holds a layer of our
# bases (someone else's, or one the engine had already): BuildKit then
# takes the base from the engine's layer store without pulling it.
bk_shared_bases() {
    local base ids images
    ids=$(for base in "$@"; do
        skopeo inspect --config --tls-verify=false "docker://$REGISTRY/bench/$base" |
            python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["rootfs"]["diff_ids"]))'
    done)
    images=$(bk image ls -aq | sort -u)
    [[ -n $images ]] || return 0
    # shellcheck disable=SC2086
    if bk image inspect -f '{{join .RootFS.Layers "\n"}}' $images | grep -qxF "$ids"; then
        echo "compare.sh: WARNING: an image in Docker 26 holds a layer of a base ($*):" \
            "BuildKit's cold builds will not pull it; remove that image for a fair cold row" >&2
        shared_warning="Docker 26 held an image sharing a base layer: BuildKit's cold rows did not pull that base."
    fi
}

# build_cmd TOOL ROW DOCKERFILE CONTEXT ARGS...: sets cmd to the build
# command. buildx runs with the host network (the engine has no bridge;
# kiln's RUN steps use the host's network too).
build_cmd() {
    local tool=$1 row=$2 dockerfile=$3 context=$4
    shift 4
    if [[ $tool == kiln ]]; then
        cmd=(env "KILN_ROOT=$(kiln_root "$row")" "$KILN" build --progress plain)
    else
        cmd=(env "DOCKER_HOST=$DOCKER_HOST_26" "$DOCKER" buildx build --progress plain --network host)
    fi
    cmd+=(--build-arg "REGISTRY=$REGISTRY" --iidfile "$(iid_file "$tool" "$row")" -f "$dockerfile" "$@" "$context")
}

iid_file() { echo "$work/iid-$1-$(group "$2")"; }
iid() { cat "$(iid_file "$1" "$2")" 2> /dev/null || true; }

# ---------------------------------------------------------------------------
# Set-up

push_base() {
    local layout=$1 tag=$2 ref=$3
    skopeo copy -q --dest-tls-verify=false "oci:$layout:$tag" "docker://$REGISTRY/bench/$ref" ||
        die "could not push $layout:$tag to $REGISTRY/bench/$ref (is the registry of peers.sh running?)"
}

echo "== set-up in $work"
push_base "$BUSYBOX" latest busybox:latest
if wants apt; then
    debian_tag=$(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))["manifests"][0]
print(m.get("annotations", {}).get("org.opencontainers.image.ref.name", ""))' "$DEBIAN/index.json")
    push_base "$DEBIAN" "$debian_tag" debian:bookworm
fi

shared_warning=
if [[ $have_bk == 1 ]]; then
    bk_cold
    if wants apt; then bk_shared_bases busybox:latest debian:bookworm; else bk_shared_bases busybox:latest; fi
fi

for row in apt stages big warm steps; do
    mkdir -p "$work/ctx-$row"
done
if wants big; then
    # 10 MiB of real text: the host's C headers, as bench/export.sh uses.
    python3 - "$work/ctx-big/seed.txt" <<'PY'
import os, sys
want = 10 << 20
files = sorted(os.path.join(d, f) for d, _, fs in os.walk("/usr/include") for f in fs)
with open(sys.argv[1], "wb") as out:
    while out.tell() < want:
        for f in files:
            try:
                with open(f, "rb") as src:
                    out.write(src.read())
            except OSError:
                pass
            if out.tell() >= want:
                break
    out.truncate(want)
PY
fi
if wants_any warm noop; then
    mkdir -p "$work/ctx-warm/src"
    echo "dependencies v1" > "$work/ctx-warm/deps.txt"
    for i in $(seq 20); do
        seq "$i" 2000 > "$work/ctx-warm/src/file$i.txt"
    done
fi
if wants_any copy-cold copy-one copy-noop; then
    echo "== making the 50,000-file context (bench/make-context.py)"
    python3 "$here/make-context.py" "$work/ctx-copy" 50000 300
fi
if wants stages; then
    if [[ -z ${STAGE_MB:-} ]]; then
        # CPU-seconds of the stage's pipeline for 200 MB, scaled to 3 s.
        /usr/bin/time -f '%U %S' -o "$work/calib" sh -c \
            'dd if=/dev/zero bs=1M count=200 2> /dev/null | busybox sha256sum > /dev/null'
        STAGE_MB=$(awk '{cpu = $1 + $2; if (cpu < 0.01) cpu = 0.01; printf "%d", 3 * 200 / cpu}' "$work/calib")
    fi
    echo "   stages: each stage hashes $STAGE_MB MB (about 3 CPU-seconds)"
fi
corpus_files=()
if wants lint || wants lint-repeat; then
    while IFS= read -r -d '' f; do corpus_files+=("$f"); done < <(
        find "$CORPUS" -maxdepth 1 -type f ! -name '*.dockerignore' ! -name '*.tsv' -print0 | sort -z)
    [[ ${#corpus_files[@]} -gt 0 ]] || die "CORPUS: no Dockerfiles in $CORPUS"
    [[ -x $CI_TOOLS/shellcheck ]] || command -v shellcheck > /dev/null ||
        die "no shellcheck in CI_TOOLS ($CI_TOOLS) nor on PATH: the lint row measures kiln lint with ShellCheck"
fi

# ---------------------------------------------------------------------------
# Rows. Each row has, for each tool, a preparation (untimed, before every
# run), the timed command and a check of its result (untimed). A tool whose
# build fails or whose check fails gets no figure for the row.

declare -A times rss failed
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# prepare TOOL ROW RUN: the untimed state before a run; sets $ctx (what
# drop_caches reads back) and $before_iid (the image id before the run).
prepare() {
    local tool=$1 row=$2 run=$3
    before_iid=$(iid "$tool" "$row")
    case $row in
        lint)
            # Cold: no verdict ShellCheck gave kiln earlier.
            rm -rf "$work/lint-cache"
            ctx=$CORPUS
            return 0
            ;;
        lint-repeat)
            # kiln remembers ShellCheck's verdicts (XDG_CACHE_HOME/kiln):
            # the same files linted again, after one untimed run.
            if [[ ! -d $work/lint-cache-warm ]]; then
                XDG_CACHE_HOME=$work/lint-cache-warm PATH="$CI_TOOLS:$PATH" \
                    "$KILN" lint --no-fail -f json "${corpus_files[@]}" > /dev/null
            fi
            ctx=$CORPUS
            return 0
            ;;
        apt | stages | big | steps | copy-cold)
            if [[ $tool == kiln ]]; then rm -rf "$(kiln_root "$row")"; else bk_cold; fi
            ;;
        copy-one | copy-noop | warm | noop)
            # The first run starts from a build of the context as it is
            # (untimed; cold if the earlier rows left nothing).
            if [[ $run == 1 ]]; then
                build_cmd "$tool" "$row" "$(dockerfile "$row")" "$(context "$row")" -t "$(tag "$row")"
                "${cmd[@]}" > "$log/first-$tool-$row" 2>&1 ||
                    die "the untimed first $tool build of $row failed: see $log/first-$tool-$row"
                before_iid=$(iid "$tool" "$row")
            fi
            # One file changes every time: the same file, new contents.
            case $row in
                copy-one) printf 'changed %s %s %s\n' "$tool" "$run" "$(now)" >> "$work/ctx-copy/d42/s00/f00042.bin" ;;
                warm) printf 'changed %s %s %s\n' "$tool" "$run" "$(now)" >> "$work/ctx-warm/src/file7.txt" ;;
            esac
            ;;
    esac
    rm -f "$(iid_file "$tool" "$row")"
    ctx=$(context "$row")
}

context() {
    case $(group "$1") in
        copy) echo "$work/ctx-copy" ;;
        *) echo "$work/ctx-$(group "$1")" ;;
    esac
}
dockerfile() {
    case $(group "$1") in
        copy) echo "$work/ctx-copy/Dockerfile" ;;
        *) echo "$here/compare/$(group "$1").Dockerfile" ;;
    esac
}
tag() { echo "kiln-compare/$(group "$1"):latest"; }

# run_timed TOOL ROW RUN NAME: the timed command of ROW.
run_timed() {
    local tool=$1 row=$2 run=$3 name=$4 extra=()
    case $row in
        apt) extra=(--build-arg "MIRROR=$MIRROR") ;;
        stages) extra=(--build-arg "MB=$STAGE_MB") ;;
    esac
    case $row in
        big)
            big_ref=$REGISTRY/bench/compare-big-$tool:$stamp-$run
            big_tar=$work/big-$tool.tar
            rm -f "$big_tar"
            if [[ $tool == kiln ]]; then
                build_cmd kiln big "$(dockerfile big)" "$(context big)" \
                    -o "type=docker,dest=$big_tar" -o "type=registry,name=$big_ref"
                timed "$name" "${cmd[@]}"
            else
                # Docker's builder (the docker driver) has no docker exporter
                # and takes one output, so: build and push (buildx's --push,
                # through the engine), then `docker save` the tarball, in the
                # same timed command.
                build_cmd bk big "$(dockerfile big)" "$(context big)" -t "$big_ref" --push
                # shellcheck disable=SC2016 # the inner shell expands them
                timed "$name" sh -c 'h=$1 d=$2 t=$3 r=$4; shift 4; "$@" && DOCKER_HOST=$h "$d" save -o "$t" "$r"' \
                    sh "$DOCKER_HOST_26" "$DOCKER" "$big_tar" "$big_ref" "${cmd[@]}"
            fi
            ;;
        lint | lint-repeat)
            cache=$work/lint-cache
            [[ $row == lint-repeat ]] && cache=$work/lint-cache-warm
            if [[ $tool == kiln ]]; then
                timed "$name" env XDG_CACHE_HOME="$cache" PATH="$CI_TOOLS:$PATH" \
                    "$KILN" lint --no-fail -f json "${corpus_files[@]}"
            else
                timed "$name" "$HADOLINT" --no-fail -f json "${corpus_files[@]}"
            fi
            ;;
        *)
            build_cmd "$tool" "$row" "$(dockerfile "$row")" "$(context "$row")" -t "$(tag "$row")" "${extra[@]}"
            timed "$name" "${cmd[@]}"
            ;;
    esac
}

# steps_ran LOG none|PREFIX...: the Dockerfile steps of LOG (--progress
# plain) that were not CACHED are exactly those whose instruction starts
# with one of the PREFIXes (none: every step was cached).
steps_ran() {
    python3 - "$@" <<'PY'
import re, sys
path, want = sys.argv[1], [] if sys.argv[2:] == ["none"] else sys.argv[2:]
steps, cached = {}, set()
for line in open(path, errors="replace"):
    m = re.match(r"#(\d+) \[([^\]]*)\] (.*)$", line.rstrip("\n"))
    if m and m.group(2) != "internal" and not m.group(3).startswith("FROM "):
        steps.setdefault(m.group(1), m.group(3))
    m = re.match(r"#(\d+) CACHED\s*$", line)
    if m:
        cached.add(m.group(1))
if not steps:
    sys.exit(f"{path}: no Dockerfile step in the progress output")
ran = sorted(text for vid, text in steps.items() if vid not in cached)
expected = sorted(text for text in steps.values() if text.startswith(tuple(want))) if want else []
if ran != expected:
    sys.exit(f"{path}: the steps that ran were {ran or 'none'}, expected {expected or 'none'}")
PY
}

# check TOOL ROW NAME: did the timed command make what it should? Says why
# not on stderr and fails.
check() {
    local tool=$1 row=$2 name=$3 id
    if [[ $row == lint* ]]; then
        python3 - "$log/$name" <<'PY'
import json, sys
path = sys.argv[1]
try:
    findings = json.load(open(path))
except ValueError as e:
    sys.exit(f"{path}: not JSON: {e}")
if not isinstance(findings, list) or not findings:
    sys.exit(f"{path}: no list of findings")
codes = {str(f.get("code", "")) for f in findings if isinstance(f, dict)}
if not any(c.startswith("SC") for c in codes):
    sys.exit(f"{path}: no ShellCheck (SC) finding among {len(findings)}: ShellCheck did not run")
PY
        return
    fi
    id=$(iid "$tool" "$row")
    if [[ -z $id ]]; then
        echo "no image id written" >&2
        return 1
    fi
    case $row in
        copy-one | warm)
            if [[ $id == "$before_iid" ]]; then
                echo "the image did not change ($id)" >&2
                return 1
            fi
            ;;
    esac
    # Which steps ran, from the plain progress (the same format for both).
    case $row in
        copy-noop | noop) steps_ran "$log/$name.err" none || return 1 ;;
        warm) steps_ran "$log/$name.err" 'COPY src/' 'RUN cat' || return 1 ;;
    esac
    if [[ $row == big ]]; then
        if ! tar -tf "$big_tar" | grep -qx 'manifest.json'; then
            echo "$big_tar is not a docker tarball" >&2
            return 1
        fi
        if ! skopeo inspect --raw --tls-verify=false "docker://$big_ref" > /dev/null; then
            echo "$big_ref is not in the registry" >&2
            return 1
        fi
        # Untag the pushed image (its blobs stay until the registry's GC).
        skopeo delete --tls-verify=false "docker://$big_ref" > /dev/null 2>&1 || true
        rm -f "$big_tar"
        [[ $tool == bk ]] && bk image rm -f "$big_ref" > /dev/null
        return 0
    fi
    if [[ $tool == kiln ]]; then
        kiln "$row" inspect "$(tag "$row")" > /dev/null
    else
        bk image inspect "$(tag "$row")" > /dev/null
    fi
}

one_run() {
    local tool=$1 row=$2 run=$3 name
    name=$row-$tool-$run
    [[ -n ${failed[$row-$tool]:-} ]] && return 0
    prepare "$tool" "$row" "$run"
    drop_caches "$ctx"
    if ! run_timed "$tool" "$row" "$run" "$name"; then
        failed[$row-$tool]="exit status (log: $log/$name)"
        echo "   $row $tool run $run: FAILED, see $log/$name" >&2
        tail -n 5 "$log/$name" >&2
        return 0
    fi
    if ! check "$tool" "$row" "$name" 2>> "$log/$name.check"; then
        failed[$row-$tool]="check (log: $log/$name.check)"
        echo "   $row $tool run $run: check FAILED: $(tail -n1 "$log/$name.check")" >&2
        return 0
    fi
    times[$row-$tool]+="$secs "
    [[ $tool == kiln ]] && rss[$row]+="$rss_mb "
    printf '   %-9s run %d  %-8s %7.2f s%s\n' "$row" "$run" "$tool" "$secs" \
        "$([[ $tool == kiln ]] && echo "  (peak RSS $rss_mb MB)")"
}

for row in $ROWS; do
    other=
    if [[ $row == lint* ]]; then
        [[ $have_hadolint == 1 ]] && other=hadolint
    elif [[ $have_bk == 1 ]]; then
        other=bk
    fi
    echo "== $row ($(cut -d' ' -f1-3 /proc/loadavg))"
    for run in $(seq "$RUNS"); do
        # Interleaved, each tool first every other run.
        if ((run % 2)) || [[ -z $other ]]; then
            order="kiln $other"
        else
            order="$other kiln"
        fi
        for tool in $order; do one_run "$tool" "$row" "$run"; done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# The table.

aim() {
    case $1 in
        apt) echo "≤ 5.5 s" ;;
        stages) echo "≤ 8.0 s" ;;
        copy-one) echo "≤ 1.0 s" ;;
        copy-cold) echo "≤ 5.0 s" ;;
        big) echo "≤ 9.0 s" ;;
        lint | lint-repeat) echo "≤ 1.5 s, ≥ 10x" ;;
        *) echo "no slower" ;;
    esac
}
title() {
    case $1 in
        apt) echo "\`apt-get install\` of 4 packages on Debian, cold" ;;
        stages) echo "4 stages, each \`sleep 2\` + ~3 CPU-s ($STAGE_MB MB hashed), cold" ;;
        copy-cold) echo "\`COPY . /src\`, 50,000 files (300 MB), cold" ;;
        copy-one) echo "\`COPY . /src\` of the same context, one file changed" ;;
        copy-noop) echo "\`COPY . /src\` of the same context, nothing changed" ;;
        big) echo "one RUN writing 500 MiB, built + docker tarball + push, cold" ;;
        warm) echo "warm rebuild: one source file changed, dependency step cached (2 of 4 steps run)" ;;
        noop) echo "no-op rebuild of the same Dockerfile (every step cached)" ;;
        steps) echo "50 \`RUN echo N > /N\` steps on busybox, cold" ;;
        lint) echo "lint 294 Dockerfiles with ShellCheck (hadolint 2.15.1 in the BuildKit column)" ;;
        lint-repeat) echo "the same lint again: kiln reuses ShellCheck's remembered verdicts (hadolint has none)" ;;
    esac
}
med() { tr ' ' '\n' <<< "${times[$1]:-}" | { grep . || true; } | median; }
fmt_s() { [[ -n $1 ]] && printf '%.2f s' "$1"; }
cell() {
    local key=$1 present=$2 m
    if [[ $present == 0 ]]; then
        echo "–"
    elif [[ -n ${failed[$key]:-} ]]; then
        echo "failed (${failed[$key]})"
    else
        m=$(med "$key")
        if [[ -n $m ]]; then fmt_s "$m"; else echo "–"; fi
    fi
}

kiln_commit=$(git -C "$repo" rev-parse --short HEAD 2> /dev/null || echo unknown)
{
    echo "kiln vs BuildKit v0.13 ($(date -u '+%Y-%m-%d %H:%M UTC'), kiln $kiln_commit: $KILN;" \
        "${bk_version:-no BuildKit}; $(nproc) CPUs; medians of $RUNS; load average $load_start at the start, $load_end at the end)"
    echo
    echo "| scenario | BuildKit v0.13 | kiln | ratio | aim | kiln peak RSS |"
    echo "|---|---:|---:|---:|---|---:|"
    for row in $ROWS; do
        present=$have_bk
        [[ $row == lint* ]] && present=$have_hadolint
        b=$(cell "$row-bk" "$present")
        [[ $row == lint* ]] && b=$(cell "$row-hadolint" "$present")
        k=$(cell "$row-kiln" 1)
        kb=$(med "$row-kiln")
        bb=$(med "$row-bk")
        [[ $row == lint* ]] && bb=$(med "$row-hadolint")
        ratio="–"
        if [[ -n $kb && -n $bb && $present == 1 && -z ${failed[$row-kiln]:-} ]]; then
            ratio=$(awk -v b="$bb" -v k="$kb" 'BEGIN {if (k > 0) printf "%.2fx", b / k; else print "–"}')
        fi
        r=$(tr ' ' '\n' <<< "${rss[$row]:-}" | { grep . || true; } | median)
        echo "| $(title "$row") | $b | $k | $ratio | $(aim "$row") | ${r:+$r MB} |"
    done
    echo
    [[ -n $shared_warning ]] && echo "WARNING: $shared_warning" && echo
    echo "Ratio: BuildKit (or hadolint) median / kiln median; above 1 means kiln is faster. Every run:"
    echo
    for row in $ROWS; do
        k=${times[$row-kiln]:-–}
        line="- $row: kiln ${k% }"
        if [[ $row == lint* ]]; then
            b=${times[$row-hadolint]:-–}
            line+="; hadolint ${b% }"
        else
            b=${times[$row-bk]:-–}
            line+="; BuildKit ${b% }"
        fi
        echo "$line" | sed -E 's/([0-9]+\.[0-9]{2})[0-9]*/\1/g'
    done
} | tee "$OUT"
echo
echo "(written to $OUT)"
for key in "${!failed[@]}"; do
    [[ -n ${failed[$key]} ]] && exit 1
done
exit 0
