#!/usr/bin/env bash
# Writes the seed corpora into fuzz/seeds/<target>/ (git-ignored): the
# Dockerfiles, .dockerignores and shell test words of ../shared/corpus, and
# small real tars, layouts and docker-archives made here with GNU tar.
# Run from anywhere; needs ../shared beside the repository, tar, gzip,
# bzip2, xz, zstd and sha256sum. Run as root, the tars also hold device
# nodes and files owned by other users.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
shared="$fuzz/../../shared/corpus"
seeds="$fuzz/seeds"
if [ ! -d "$shared" ]; then
    echo "error: $shared (the test corpora) is missing" >&2
    exit 1
fi
rm -rf "$seeds"
mkdir -p "$seeds"/{dockerfile,shell_expand,dockerignore,tar,add_archive,load_archive}

# Dockerfiles (parse_dockerfile and lower read this directory).
for f in "$shared"/realworld/*; do
    case "$f" in *.tsv | *.dockerignore) continue ;; esac
    cp "$f" "$seeds/dockerfile/"
done
for d in "$shared"/buildkit/parser/testfiles/* "$shared"/buildkit/parser/testfiles-negative/*; do
    cp "$d/Dockerfile" "$seeds/dockerfile/buildkit-$(basename "$d")"
done
cp "$shared"/realworld/*.dockerignore "$seeds/dockerignore/"

# Shell words: a zero options byte, then the word (the envVarTest and
# wordsTest inputs, and every line of the Dockerfiles holding a `$`).
n=0
word() {
    n=$((n + 1))
    { printf '\0'; printf '%s' "$1"; } >"$seeds/shell_expand/w$n"
}
while IFS= read -r line; do
    case "$line" in '#'* | '') continue ;; esac
    w="${line#*|}"
    w="${w%|*}"
    word "${w%"${w##*[![:space:]]}"}"
done <"$shared/buildkit/shell/envVarTest"
while IFS= read -r line; do
    case "$line" in 'ENV '* | '#'* | '') continue ;; esac
    word "${line% | *}"
done <"$shared/buildkit/shell/wordsTest"
grep -h '\$' "$seeds"/dockerfile/* | sort -u | awk 'NR <= 400' | while IFS= read -r line; do
    word "$line"
done

# Layer tars: every entry type, whiteouts, PAX xattrs, long names, owners.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mk() { mkdir -p "$work/$1" && cd "$work/$1"; }
mk t1
mkdir -p d/e .wh..wh..opq-dir
printf 'hello\n' >d/f
ln d/f d/hard
ln -s ../d/f d/rel
ln -s /etc/passwd d/abs
: >d/.wh.gone
mkfifo d/fifo
mkdir -p x && : >x/.wh..wh..opq
if [ "$(id -u)" = 0 ]; then
    mknod d/null c 1 3
    chown 1000:1000 d/f
fi
chmod 4755 d/f
mkdir -p "l/$(printf 'n%.0s' {1..120})/$(printf 'm%.0s' {1..60})"
: >"l/$(printf 'n%.0s' {1..120})/$(printf 'm%.0s' {1..60})/file"
setfattr -n user.k -v v d/f 2>/dev/null || true
tar --format=pax --xattrs -cf "$seeds/tar/pax.tar" .
tar --format=gnu -cf "$seeds/tar/gnu.tar" .
tar --format=ustar -cf "$seeds/tar/ustar.tar" d x 2>/dev/null || true
tar --format=v7 -cf "$seeds/tar/v7.tar" d/f d/rel
tar -cf "$seeds/tar/dotted.tar" ./d/f --transform 's,^\./d,../../escape,' 2>/dev/null
tar -cf "$seeds/tar/absolute.tar" -P "$work/t1/d/f" 2>/dev/null
gzip -9 -c "$seeds/tar/v7.tar" >"$seeds/tar/v7.tar.gz"
zstd -q -c "$seeds/tar/v7.tar" >"$seeds/tar/v7.tar.zst"
# Symlink tricks: a link, then an entry below it; a hardlink to a link.
mk t2
ln -s /etc link
tar -cf "$seeds/tar/link-then-below.tar" link
mkdir -p sub && printf x >sub/f && rm link && mv sub link
tar -rf "$seeds/tar/link-then-below.tar" link/f
cp "$seeds"/tar/* "$seeds/add_archive/"
bzip2 -c "$seeds/tar/v7.tar" >"$seeds/add_archive/v7.tar.bz2"
xz -c "$seeds/tar/v7.tar" >"$seeds/add_archive/v7.tar.xz"
printf 'not an archive\n' >"$seeds/add_archive/plain"

# An OCI layout and a docker-archive holding one tiny image.
mk layer && printf 'hi\n' >hi && tar -cf ../layer.tar hi
cd "$work"
sum() { sha256sum "$1" | cut -d' ' -f1; }
layer="$(sum layer.tar)"
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$layer" >config.json
config="$(sum config.json)"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$config" "$(stat -c %s config.json)" "$layer" "$(stat -c %s layer.tar)" >manifest.json
manifest="$(sum manifest.json)"
mkdir -p oci/blobs/sha256
cp layer.tar "oci/blobs/sha256/$layer"
cp config.json "oci/blobs/sha256/$config"
cp manifest.json "oci/blobs/sha256/$manifest"
printf '{"imageLayoutVersion":"1.0.0"}' >oci/oci-layout
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
    "$manifest" "$(stat -c %s manifest.json)" >oci/index.json
tar -C oci -cf "$seeds/load_archive/oci.tar" .
gzip -c "$seeds/load_archive/oci.tar" >"$seeds/load_archive/oci.tar.gz"
mkdir -p docker
cp layer.tar "docker/$layer.tar"
cp config.json "docker/$config.json"
printf '[{"Config":"%s.json","RepoTags":["x:v1"],"Layers":["%s.tar"]}]' "$config" "$layer" >docker/manifest.json
printf '{"x":{"v1":"%s"}}' "$config" >docker/repositories
tar -C docker -cf "$seeds/load_archive/docker.tar" .
echo "seeds in $seeds: $(find "$seeds" -type f | wc -l) files"
