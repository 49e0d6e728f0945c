//! Writing OCI image layouts: a directory, or a tar of one.

use super::*;

/// The `index.json` of a layout holding `images`.
fn layout_index(store: &LocalStore, images: &[NamedImage]) -> Result<Vec<u8>> {
    let mut manifests = Vec::new();
    for image in images {
        let (m, size) = read_manifest(store, &image.digest)?;
        let names: Vec<Option<&String>> = if image.names.is_empty() {
            vec![None]
        } else {
            image.names.iter().map(Some).collect()
        };
        for name in names {
            let mut desc = serde_json::json!({
                "mediaType": m.media_type(),
                "digest": image.digest.as_str(),
                "size": size,
            });
            if let Some(name) = name {
                let tag = crate::Reference::parse(name)
                    .ok()
                    .and_then(|r| r.tag().map(str::to_string))
                    .unwrap_or_else(|| name.clone());
                desc["annotations"] = serde_json::json!({
                    IMAGE_NAME_ANNOTATION: name,
                    REF_NAME_ANNOTATION: tag,
                });
            }
            manifests.push(desc);
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    serde_json::to_vec(&index).map_err(|e| ArchiveError::Invalid {
        archive: PathBuf::from("index.json"),
        path: "index.json".into(),
        message: e.to_string(),
    })
}

const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Every blob the images reach, in a stable order.
fn blobs_of(store: &LocalStore, images: &[NamedImage]) -> Result<Vec<Digest>> {
    let mut all = std::collections::BTreeSet::new();
    for image in images {
        all.extend(reachable(store, &image.digest)?);
    }
    Ok(all.into_iter().collect())
}

/// Writes `images` as an OCI image layout directory at `dir` (created if
/// needed; blobs already there are kept). Blobs are hard-linked from the
/// store when it is on the same filesystem, copied otherwise.
///
/// # Errors
/// Missing blobs in the store or I/O errors naming the path.
pub fn write_layout_dir(store: &LocalStore, images: &[NamedImage], dir: &Path) -> Result<()> {
    init_layout_dir(dir)?;
    for digest in blobs_of(store, images)? {
        put_layout_blob(store, &digest, dir)?;
    }
    write_file_atomic(&dir.join("index.json"), &layout_index(store, images)?)
}

/// Makes `dir` an OCI image layout (its `oci-layout` file and blob
/// directory), keeping what is already there; the caller writes
/// `index.json`.
///
/// # Errors
/// I/O errors naming the path.
pub fn init_layout_dir(dir: &Path) -> Result<()> {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(aio("creating", &blob_dir))?;
    write_file_atomic(&dir.join("oci-layout"), OCI_LAYOUT_FILE)
}

/// Where blob `digest` is in the OCI image layout at `dir`
/// (`blobs/<algorithm>/<hex>`).
pub fn layout_blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

/// Puts the store's blob `digest` into the OCI layout at `dir`: hard-linked
/// when on the same filesystem, copied (through a temporary file)
/// otherwise; a blob already there is kept.
///
/// # Errors
/// I/O errors naming the path.
pub fn put_layout_blob(store: &LocalStore, digest: &Digest, dir: &Path) -> Result<()> {
    let dest = layout_blob_path(dir, digest);
    if dest.exists() {
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(aio("creating", parent))?;
    }
    let src = store.blob_path(digest);
    if fs::hard_link(&src, &dest).is_err() {
        let tmp = dest.with_extension("tmp");
        fs::copy(&src, &tmp).map_err(aio("copying blob to", &tmp))?;
        fs::rename(&tmp, &dest).map_err(aio("renaming", &dest))?;
    }
    Ok(())
}

fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(aio("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(aio("renaming", path))
}

/// Writes `images` as a tar of an OCI image layout to `out`.
///
/// # Errors
/// Missing blobs or write errors.
pub fn write_layout_tar<W: Write>(store: &LocalStore, images: &[NamedImage], out: W) -> Result<W> {
    let err = |e: io::Error| ArchiveError::Io {
        action: "writing layout tar",
        path: PathBuf::from("-"),
        source: e,
    };
    let mut tar = TarOut::new(out);
    tar.file("oci-layout", OCI_LAYOUT_FILE.len() as u64, OCI_LAYOUT_FILE)
        .map_err(err)?;
    let index = layout_index(store, images)?;
    tar.file("index.json", index.len() as u64, index.as_slice())
        .map_err(err)?;
    for digest in blobs_of(store, images)? {
        let size = store
            .size(&digest)
            .ok_or_else(|| StoreError::NotFound(digest.clone()))?;
        let file = store.open(&digest)?;
        tar.file(
            &format!("blobs/{}/{}", digest.algorithm(), digest.hex()),
            size,
            file,
        )
        .map_err(err)?;
    }
    tar.finish().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OCI image layout specification names the path: other tools
    /// read the blobs kiln writes there.
    #[test]
    fn a_layout_blob_is_under_blobs_algorithm_hex() {
        let d: Digest = format!("sha256:{}", "cd".repeat(32))
            .parse()
            .expect("digest");
        assert_eq!(
            layout_blob_path(Path::new("/o"), &d),
            PathBuf::from(format!("/o/blobs/sha256/{}", "cd".repeat(32)))
        );
    }
}
