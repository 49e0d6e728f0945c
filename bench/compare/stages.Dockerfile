# compare.sh row `stages`: 4 independent stages, each sleeping 2 s then
# hashing MB megabytes of zeros (compare.sh calibrates MB to about 3
# CPU-seconds), gathered by a final stage.
ARG REGISTRY=127.0.0.1:5000
FROM ${REGISTRY}/bench/busybox:latest AS s1
ARG MB=480
RUN sleep 2 && dd if=/dev/zero bs=1M count=${MB} 2>/dev/null | sha256sum > /sum1

FROM ${REGISTRY}/bench/busybox:latest AS s2
ARG MB=480
RUN sleep 2 && dd if=/dev/zero bs=1M count=${MB} 2>/dev/null | sha256sum > /sum2

FROM ${REGISTRY}/bench/busybox:latest AS s3
ARG MB=480
RUN sleep 2 && dd if=/dev/zero bs=1M count=${MB} 2>/dev/null | sha256sum > /sum3

FROM ${REGISTRY}/bench/busybox:latest AS s4
ARG MB=480
RUN sleep 2 && dd if=/dev/zero bs=1M count=${MB} 2>/dev/null | sha256sum > /sum4

FROM ${REGISTRY}/bench/busybox:latest
COPY --from=s1 /sum1 /
COPY --from=s2 /sum2 /
COPY --from=s3 /sum3 /
COPY --from=s4 /sum4 /
