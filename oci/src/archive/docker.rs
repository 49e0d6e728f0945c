//! Writing docker-archives (`docker save`'s format).

use super::*;

/// Writes `images` as a docker-archive (what `docker save` writes): each
/// image's config and uncompressed layers, `manifest.json` and
/// `repositories`. An index is resolved to `platform` first.
///
/// # Errors
/// Missing blobs, layers kiln cannot decompress (zstd), or write errors.
pub fn write_docker_archive<W: Write>(
    store: &LocalStore,
    images: &[NamedImage],
    platform: &Platform,
    out: W,
) -> Result<W> {
    let err = |e: io::Error| ArchiveError::Io {
        action: "writing docker-archive",
        path: PathBuf::from("-"),
        source: e,
    };
    let mut tar = TarOut::new(out);
    let mut entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut written = std::collections::BTreeSet::new();
    for named in images {
        let image = resolve(store, &named.digest, platform)?;
        let config_path = format!("blobs/sha256/{}", image.config_digest.hex());
        if written.insert(config_path.clone()) {
            let size = store.size(&image.config_digest).unwrap_or(0);
            tar.file(&config_path, size, store.open(&image.config_digest)?)
                .map_err(err)?;
        }
        let diff_ids = image.config.rootfs().diff_ids().clone();
        let mut layers = Vec::new();
        for (i, layer) in image.manifest.layers().iter().enumerate() {
            let digest = descriptor_digest(layer, image.manifest_digest.as_str())?;
            let diff_id = diff_ids
                .get(i)
                .cloned()
                .unwrap_or_else(|| digest.to_string());
            let hex = diff_id.rsplit(':').next().unwrap_or_default().to_string();
            let path = format!("blobs/sha256/{hex}");
            if written.insert(path.clone()) {
                // A layer a build made is also in the store as its plain
                // tar, the blob named by its diff id (content addressing
                // makes it that tar): copied as it is, not decompressed.
                match diff_id.parse::<Digest>().ok().filter(|d| store.exists(d)) {
                    Some(plain) => append_plain(&mut tar, store, &plain, &path)?,
                    None => append_uncompressed(
                        &mut tar,
                        store,
                        &digest,
                        layer.media_type().as_ref(),
                        &path,
                    )?,
                }
            }
            layers.push(path);
        }
        let tags: Vec<String> = named
            .names
            .iter()
            .filter_map(|n| crate::Reference::parse(n).ok())
            .filter(|r| r.tag().is_some())
            .map(|r| r.familiar())
            .collect();
        for t in &tags {
            if let (Some((repo, tag)), Some(top)) = (t.rsplit_once(':'), layers.last()) {
                repositories.entry(repo.to_string()).or_default().insert(
                    tag.to_string(),
                    top.rsplit('/').next().unwrap_or_default().to_string(),
                );
            }
        }
        entries.push(ArchiveManifestEntry {
            config: config_path,
            repo_tags: Some(tags),
            layers,
        });
    }
    let manifest = to_json(&entries);
    tar.file("manifest.json", manifest.len() as u64, manifest.as_slice())
        .map_err(err)?;
    let repos = to_json(&repositories);
    tar.file("repositories", repos.len() as u64, repos.as_slice())
        .map_err(err)?;
    tar.finish().map_err(err)
}

/// Serialises the archive's small JSON files. Plain structs and maps with
/// string keys cannot fail to serialise.
fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Appends the blob `digest`, a plain layer tar, as it is.
fn append_plain<W: Write>(
    tar: &mut TarOut<W>,
    store: &LocalStore,
    digest: &Digest,
    path: &str,
) -> Result<()> {
    let size = store.size(digest).unwrap_or(0);
    tar.file(path, size, store.open(digest)?)
        .map_err(|e| ArchiveError::Io {
            action: "writing docker-archive",
            path: PathBuf::from(path),
            source: e,
        })
}

/// Appends a layer to the tar uncompressed (docker-archive layers are plain
/// tars), staging a decompressed copy in the store's ingest directory to
/// learn its size first (on a read-only store: decompressing twice).
fn append_uncompressed<W: Write>(
    tar: &mut TarOut<W>,
    store: &LocalStore,
    digest: &Digest,
    media_type: &str,
    path: &str,
) -> Result<()> {
    let err = |e: io::Error| ArchiveError::Io {
        action: "writing docker-archive",
        path: PathBuf::from(path),
        source: e,
    };
    let mut file = store.open(digest)?;
    let mut head = [0u8; 4];
    let n = file
        .read(&mut head)
        .map_err(aio("reading", &store.blob_path(digest)))?;
    let compression = LayerCompression::of_media_type(media_type)
        .filter(|c| *c != LayerCompression::None)
        .unwrap_or_else(|| LayerCompression::detect(&head[..n]));
    match compression {
        LayerCompression::None => append_plain(tar, store, digest, path),
        LayerCompression::Gzip | LayerCompression::Zstd => {
            let file = store.open(digest)?;
            // A docker-archive holds plain layer tars (as `docker save`
            // writes them): decompress to a staging file for its size.
            let staged = store.layout().ingest().join(format!(
                "{}-unpack-{}",
                crate::process_tag(),
                digest.hex()
            ));
            let result = (|| {
                let mut out = match File::create(&staged) {
                    Ok(out) => out,
                    // A store on a read-only mount: decompress twice
                    // instead, once for the size and once into the tar.
                    Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => {
                        let blob = store.blob_path(digest);
                        let plain = || {
                            crate::compress::decompressor(io::BufReader::new(store.open(digest)?))
                                .map_err(aio("reading", &blob))
                        };
                        let size = io::copy(&mut plain()?, &mut io::sink())
                            .map_err(aio("decompressing", &blob))?;
                        return tar.file(path, size, plain()?).map_err(err);
                    }
                    Err(e) => return Err(aio("creating", &staged)(e)),
                };
                let mut plain = crate::compress::decompressor(io::BufReader::new(file))
                    .map_err(aio("reading", &store.blob_path(digest)))?;
                let size = io::copy(&mut plain, &mut out)
                    .map_err(aio("decompressing layer into", &staged))?;
                drop(out);
                let f = File::open(&staged).map_err(aio("opening", &staged))?;
                tar.file(path, size, f).map_err(err)
            })();
            let _ = fs::remove_file(&staged);
            result
        }
    }
}
