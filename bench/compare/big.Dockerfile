# compare.sh row `big`: one RUN writing 500 MiB, half pseudo-random bytes,
# half text (a 10 MiB sample of the host's C headers, seed.txt in the
# context, written 25 times). The random half differs on every build, so no
# blob of an earlier run can be reused or skipped at push.
ARG REGISTRY=127.0.0.1:5000
FROM ${REGISTRY}/bench/busybox:latest
RUN --mount=type=bind,target=/ctx \
    mkdir /data \
 && dd if=/dev/urandom of=/data/random.bin bs=1M count=250 2>/dev/null \
 && for i in $(seq 25); do cat /ctx/seed.txt; done > /data/text.txt
