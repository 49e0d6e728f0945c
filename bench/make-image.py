#!/usr/bin/env python3
"""Writes a reproducible OCI image layout for the registry benchmark.

Usage: make-image.py OUT_DIR [--layers N] [--layer-mb MB] [--seed S] [--tag T]

Each layer is a gzip'd tar holding one file of pseudo-random (incompressible)
bytes from a seeded generator, so the same arguments always give the same
digests. The config lists the layers' diff_ids (digests of the uncompressed
tars). Prints the manifest digest and the total blob bytes (config + layers)
as `KEY=VALUE` lines on stdout.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile


def write_blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest


def make_layer(rng, index, size):
    payload = rng.randbytes(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"bench/layer{index}.bin")
        info.size = len(payload)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    # Level 1: the data is incompressible either way; this just keeps
    # generation fast. mtime=0 keeps the gzip header reproducible.
    gz = gzip.compress(raw, compresslevel=1, mtime=0)
    return raw, gz


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--layer-mb", type=float, default=50)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--tag", default="bench")
    a = p.parse_args()

    root = a.out
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    rng = random.Random(a.seed)
    size = int(a.layer_mb * 1_000_000)
    layers, diff_ids = [], []
    for i in range(a.layers):
        raw, gz = make_layer(rng, i, size)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layers.append({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": write_blob(root, gz),
            "size": len(gz),
        })
        del raw, gz

    config = json.dumps({
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": f"kiln bench layer {i}"}
                    for i in range(a.layers)],
    }, separators=(",", ":"), sort_keys=True).encode()
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": write_blob(root, config),
        "size": len(config),
    }
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layers,
    }, separators=(",", ":")).encode()
    manifest_digest = write_blob(root, manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": a.tag},
        }],
    }
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f, separators=(",", ":"))

    total = config_desc["size"] + sum(l["size"] for l in layers)
    print(f"MANIFEST_DIGEST={manifest_digest}")
    print(f"BLOB_BYTES={total}")


if __name__ == "__main__":
    sys.exit(main())
