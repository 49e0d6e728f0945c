//! Reading an OCI image layout directory: index.json → one manifest →
//! config + layers. Layers may be gzip-compressed (detected by magic bytes)
//! or plain tars; their uncompressed digests are checked against
//! `rootfs.diff_ids`.

use crate::listing::{hex, read_tar, Member};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One image of a layout.
pub struct Image {
    /// The config blob, parsed.
    pub config: Value,
    /// `rootfs.diff_ids` of the config.
    pub diff_ids: Vec<String>,
    /// The layer blobs, in manifest order.
    pub layers: Vec<PathBuf>,
}

/// Reads the single image of the OCI layout at `dir`.
pub fn read_image(dir: &Path) -> Result<Image, String> {
    let index = read_json(&dir.join("index.json"))?;
    let mut descriptor = only_manifest(&index, "index.json")?;
    // Follow nested indexes down to a manifest.
    let manifest = loop {
        let doc = read_json(&blob_path(dir, &descriptor)?)?;
        let is_index = doc.get("manifests").is_some()
            || doc.get("mediaType").and_then(Value::as_str)
                == Some("application/vnd.oci.image.index.v1+json");
        if !is_index {
            break doc;
        }
        descriptor = only_manifest(&doc, "nested index")?;
    };
    let config_desc = manifest.get("config").ok_or("manifest has no config")?;
    let config = read_json(&blob_path(dir, config_desc)?)?;
    let diff_ids: Vec<String> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .ok_or("config has no rootfs.diff_ids")?
        .iter()
        .map(|d| d.as_str().unwrap_or_default().to_string())
        .collect();
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or("manifest has no layers array")?
        .iter()
        .map(|d| blob_path(dir, d))
        .collect::<Result<Vec<_>, _>>()?;
    if layers.len() != diff_ids.len() {
        return Err(format!(
            "manifest has {} layers but the config {} diff_ids",
            layers.len(),
            diff_ids.len()
        ));
    }
    Ok(Image {
        config,
        diff_ids,
        layers,
    })
}

/// Reads a layer blob (gzip or plain tar) and checks its diff_id.
pub fn read_layer(blob: &Path, diff_id: &str) -> Result<Vec<Member>, String> {
    let what = |e: io::Error| format!("layer {}: {e}", blob.display());
    let mut file = BufReader::new(fs::File::open(blob).map_err(what)?);
    let magic = file.fill_buf().map_err(what)?;
    let stream: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(format!("layer {}: zstd is not supported", blob.display()));
    } else {
        Box::new(file)
    };
    let mut hashing = HashingReader {
        inner: stream,
        hasher: Sha256::new(),
    };
    let members = read_tar(&mut hashing).map_err(what)?;
    // The tar reader stops at the end-of-archive blocks; the diff_id covers
    // the whole uncompressed stream.
    io::copy(&mut hashing, &mut io::sink()).map_err(what)?;
    let actual = format!("sha256:{}", hex(&hashing.hasher.finalize()));
    if actual != diff_id {
        return Err(format!(
            "layer {}: uncompressed digest {actual} but diff_id {diff_id}",
            blob.display()
        ));
    }
    Ok(members)
}

/// A reader that hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn only_manifest(index: &Value, what: &str) -> Result<Value, String> {
    match index.get("manifests").and_then(Value::as_array) {
        Some(list) if list.len() == 1 => Ok(list[0].clone()),
        Some(list) => Err(format!("{what} lists {} manifests, not 1", list.len())),
        None => Err(format!("{what} has no manifests array")),
    }
}

fn blob_path(dir: &Path, descriptor: &Value) -> Result<PathBuf, String> {
    let digest = descriptor
        .get("digest")
        .and_then(Value::as_str)
        .ok_or("descriptor without digest")?;
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("bad digest {digest}"))?;
    Ok(dir.join("blobs").join(alg).join(hex))
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}
