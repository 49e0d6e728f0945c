# compare.sh row `apt`: apt-get install of 4 packages (python3 vim curl
# binutils, 30 packages with their dependencies, about 97 MB installed) on a
# Debian bookworm base, from the Debian mirror the host uses (MIRROR).
ARG REGISTRY=127.0.0.1:5000
FROM ${REGISTRY}/bench/debian:bookworm
ARG MIRROR=http://deb.debian.org/debian
RUN echo "deb ${MIRROR} bookworm main" > /etc/apt/sources.list \
 && rm -f /etc/apt/sources.list.d/* \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 vim curl binutils > /dev/null \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
