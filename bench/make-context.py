#!/usr/bin/env python3
"""Writes a build context of N files totalling about SIZE_MB megabytes, in
nested directories, with deterministic pseudo-random (incompressible)
content, plus a Dockerfile `FROM scratch / COPY . /src`.

Usage: make-context.py DIR [FILES] [SIZE_MB] [SEED]
"""
import os
import random
import sys

def main():
    out = sys.argv[1]
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    size_mb = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 42
    rng = random.Random(seed)
    total = size_mb * 1_000_000
    mean = total // files
    os.makedirs(out, exist_ok=True)
    written = 0
    for i in range(files):
        d = os.path.join(out, f"d{i % 100:02d}", f"s{(i // 100) % 50:02d}")
        os.makedirs(d, exist_ok=True)
        # Sizes vary between 0.25x and 1.75x the mean.
        size = max(1, int(mean * (0.25 + 1.5 * rng.random())))
        if i == files - 1:
            size = max(1, total - written)
        with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
            f.write(rng.randbytes(size))
        written += size
    with open(os.path.join(out, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY . /src\n")
    print(f"{files} files, {written / 1e6:.1f} MB in {out}")

if __name__ == "__main__":
    main()
