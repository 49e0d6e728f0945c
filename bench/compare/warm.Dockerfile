# compare.sh rows `warm` and `noop`: dependencies (a 50 MB step that also
# spins the CPU) then the sources (src/) and a build step over them. `warm`
# changes one source file before each build, so the last two steps run
# again on top of a cached dependency step; `noop` changes nothing.
ARG REGISTRY=127.0.0.1:5000
FROM ${REGISTRY}/bench/busybox:latest
COPY deps.txt /app/
RUN mkdir -p /app/deps \
 && dd if=/dev/urandom of=/app/deps/blob bs=1M count=50 2>/dev/null \
 && dd if=/dev/zero bs=1M count=200 2>/dev/null | sha256sum > /app/deps/sum
COPY src/ /app/src/
RUN cat /app/src/* | sha256sum > /app/build.sum
