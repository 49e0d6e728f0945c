//! Reading OCI layouts (directories or tars) and docker-archives into
//! the store, every blob verified before an image is named.

use super::*;
use crate::store::BlobWriter;

/// Where the files of an archive are: a directory, or a tar already copied
/// into the store (path → digest).
enum Files<'a> {
    Dir(&'a Path),
    Stored(HashMap<String, Digest>),
}

/// What a descriptor claims of the blob it names, for the error if the
/// blob disagrees.
struct Claim<'a> {
    /// The descriptor's field (`layers[0].size`).
    field: &'a str,
    /// The manifest or file holding the descriptor.
    holder: &'a str,
    /// The size it gives.
    size: u64,
}

impl Claim<'_> {
    /// Refuses `actual` unless it is the claimed size of `digest`.
    fn check(&self, digest: &str, actual: u64) -> Result<()> {
        if actual != self.size {
            return Err(ImageError::SizeMismatch {
                field: self.field.to_string(),
                holder: self.holder.to_string(),
                digest: digest.to_string(),
                claimed: self.size,
                actual,
            }
            .into());
        }
        Ok(())
    }
}

impl Files<'_> {
    /// A small JSON file of the archive (`index.json`, `manifest.json`),
    /// refused above [`MAX_MANIFEST_SIZE`].
    fn read(&self, store: &LocalStore, path: &str) -> Option<Result<Vec<u8>>> {
        let too_large = |size: u64| {
            check_size("file", path, size, MAX_MANIFEST_SIZE).map_err(ArchiveError::from)
        };
        match self {
            Files::Dir(dir) => {
                let p = dir.join(path);
                if !p.is_file() {
                    return None;
                }
                Some((|| {
                    let size = fs::metadata(&p).map_err(aio("reading", &p))?.len();
                    too_large(size)?;
                    fs::read(&p).map_err(aio("reading", &p))
                })())
            }
            Files::Stored(map) => map.get(path).map(|d| {
                too_large(store.size(d).unwrap_or(0))?;
                Ok(store.read(d)?)
            }),
        }
    }

    /// Makes `path` a verified blob in the store and returns its digest;
    /// its size must be the one `claim` gives (a larger file is not read
    /// past that size).
    fn ingest(
        &self,
        store: &LocalStore,
        path: &str,
        expected: Option<&Digest>,
        claim: Option<&Claim<'_>>,
        archive: &Path,
    ) -> Result<Digest> {
        match self {
            Files::Stored(map) => {
                let d = map.get(path).ok_or_else(|| ArchiveError::Missing {
                    archive: archive.to_path_buf(),
                    path: path.to_string(),
                })?;
                if let Some(e) = expected {
                    if e != d {
                        return Err(ArchiveError::Corrupt {
                            archive: archive.to_path_buf(),
                            expected: e.clone(),
                            actual: d.clone(),
                        });
                    }
                }
                if let Some(claim) = claim {
                    claim.check(d.as_str(), store.size(d).unwrap_or(0))?;
                }
                Ok(d.clone())
            }
            Files::Dir(dir) => {
                if let Some(e) = expected {
                    if store.exists(e) {
                        if let Some(claim) = claim {
                            claim.check(e.as_str(), store.size(e).unwrap_or(0))?;
                        }
                        return Ok(e.clone());
                    }
                }
                let p = dir.join(path);
                let mut f = File::open(&p).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        ArchiveError::Missing {
                            archive: archive.to_path_buf(),
                            path: path.to_string(),
                        }
                    } else {
                        aio("opening", &p)(e)
                    }
                })?;
                let size = f.metadata().map_or(0, |m| m.len());
                let mut w = blob_writer(store, size)?;
                let limit = claim.map_or(u64::MAX, |c| c.size.saturating_add(1));
                io::copy(&mut (&mut f).take(limit), &mut w).map_err(aio("copying", &p))?;
                if let Some(claim) = claim {
                    if w.written() != claim.size {
                        // The file's real size, not where reading stopped.
                        let actual = f.metadata().map_err(aio("reading", &p))?.len();
                        claim.check(expected.map_or(path, Digest::as_str), actual)?;
                    }
                }
                w.commit(expected, None).map_err(|e| match e {
                    StoreError::DigestMismatch { expected, actual } => ArchiveError::Corrupt {
                        archive: archive.to_path_buf(),
                        expected,
                        actual,
                    },
                    other => other.into(),
                })
            }
        }
    }
}

/// Loads every image of an OCI layout (directory or tar) or docker-archive
/// (tar) into the store and returns them. Images are not named here; the
/// caller names them (a layout's ref names are bare tags).
///
/// # Errors
/// An unknown format, invalid JSON, missing or damaged blobs.
pub fn load(store: &LocalStore, path: &Path) -> Result<Vec<LoadedImage>> {
    let _lease = store.lease()?;
    if path.is_dir() {
        return load_files(store, &Files::Dir(path), path);
    }
    let file = File::open(path).map_err(aio("opening", path))?;
    load_tar(store, file, path)
}

/// Blobs at least this big are written by a pipelined writer (hashing on
/// a worker while this thread reads; bench/blob-write.sh measured 1.26x on
/// a 341 MB blob); for smaller ones a thread costs more than it saves.
const PIPELINED_FROM: u64 = 1 << 20;

/// A writer for a blob of `size` bytes.
fn blob_writer(store: &LocalStore, size: u64) -> Result<BlobWriter> {
    Ok(if size >= PIPELINED_FROM {
        store.writer_pipelined()?
    } else {
        store.writer()?
    })
}

/// Loads from a tar stream (a layout tar or docker-archive; gzip-compressed
/// tars are accepted too).
///
/// # Errors
/// As [`load`].
pub fn load_tar(store: &LocalStore, input: impl Read, name: &Path) -> Result<Vec<LoadedImage>> {
    let mut input = io::BufReader::new(input);
    let head = io::BufRead::fill_buf(&mut input).map_err(aio("reading", name))?;
    let reader: Box<dyn Read> = if LayerCompression::detect(head) == LayerCompression::Gzip {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut archive = tar::Archive::new(reader);
    let mut map = HashMap::new();
    let mut first = true;
    for entry in archive.entries().map_err(aio("reading", name))? {
        // A file whose first header is no tar header is not an archive
        // at all; later failures are a damaged one.
        let mut entry = match entry {
            Ok(e) => e,
            Err(_) if first => return Err(ArchiveError::NotAnArchive(name.to_path_buf())),
            Err(e) => return Err(aio("reading", name)(e)),
        };
        first = false;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map_err(aio("reading", name))?;
        let Some(clean) = clean_path(&path) else {
            continue;
        };
        let mut w = blob_writer(store, entry.size())?;
        io::copy(&mut entry, &mut w).map_err(aio("reading", name))?;
        let expected = clean
            .strip_prefix("blobs/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok());
        let digest = w.commit(expected.as_ref(), None).map_err(|e| match e {
            StoreError::DigestMismatch { expected, actual } => ArchiveError::Corrupt {
                archive: name.to_path_buf(),
                expected,
                actual,
            },
            other => other.into(),
        })?;
        map.insert(clean, digest);
    }
    load_files(store, &Files::Stored(map), name)
}

/// `a/./b` → `a/b`; refuses absolute paths and `..`.
fn clean_path(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn load_files(store: &LocalStore, files: &Files<'_>, archive: &Path) -> Result<Vec<LoadedImage>> {
    let invalid = |path: &str, message: String| ArchiveError::Invalid {
        archive: archive.to_path_buf(),
        path: path.to_string(),
        message,
    };
    if let Some(bytes) = files.read(store, "index.json") {
        let bytes = bytes?;
        let index = Manifest::from_slice(&bytes, Some(media::OCI_INDEX), "index.json")
            .map_err(|e| invalid("index.json", e.to_string()))?;
        let Manifest::Index(index) = index else {
            return Err(invalid("index.json", "is not an image index".into()));
        };
        let mut out = Vec::new();
        for (i, desc) in index.manifests().iter().enumerate() {
            let digest = descriptor_digest(desc, "index.json")?;
            let annotations = desc.annotations().clone().unwrap_or_default();
            // A full name (`kiln load` names the image by it): the
            // image-name annotation, or a ref name that is more than a tag.
            let full = [IMAGE_NAME_ANNOTATION, REF_NAME_ANNOTATION]
                .into_iter()
                .filter_map(|key| annotations.get(key).map(|n| (key, n)))
                .filter(|(key, n)| *key == IMAGE_NAME_ANNOTATION || n.contains(['/', ':']));
            for (key, name) in full {
                check_name(name).map_err(|m| {
                    invalid(
                        "index.json",
                        format!("manifests[{i}].annotations[{key:?}] {name:?}: {m}"),
                    )
                })?;
            }
            let field = format!("manifests[{i}].size");
            let root = Claim {
                field: &field,
                holder: "index.json",
                size: desc.size(),
            };
            ingest_tree(store, files, &digest, &root, archive)?;
            let name = annotations
                .get(IMAGE_NAME_ANNOTATION)
                .or_else(|| annotations.get(REF_NAME_ANNOTATION))
                .cloned();
            out.push(LoadedImage { name, digest });
        }
        return Ok(out);
    }
    if let Some(bytes) = files.read(store, "manifest.json") {
        let bytes = bytes?;
        let entries: Vec<ArchiveManifestEntry> =
            serde_json::from_slice(&bytes).map_err(|e| invalid("manifest.json", e.to_string()))?;
        let mut out = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            for (j, tag) in entry.repo_tags.iter().flatten().enumerate() {
                check_name(tag).map_err(|m| {
                    invalid("manifest.json", format!("[{i}].RepoTags[{j}] {tag:?}: {m}"))
                })?;
            }
            let digest = import_docker_entry(store, files, &entry, archive)?;
            let tags = entry.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                out.push(LoadedImage {
                    name: None,
                    digest: digest.clone(),
                });
            }
            for tag in tags {
                out.push(LoadedImage {
                    name: Some(tag),
                    digest: digest.clone(),
                });
            }
        }
        return Ok(out);
    }
    Err(ArchiveError::UnknownFormat(archive.to_path_buf()))
}

/// A full image name an archive gives (a `RepoTag`, an image-name
/// annotation): a reference kiln can name an image by. Its registry part
/// must be lower case too: `UPPER/x` would otherwise name the registry
/// `UPPER`.
fn check_name(name: &str) -> std::result::Result<(), String> {
    let reference = crate::Reference::parse(name).map_err(|e| e.to_string())?;
    let host = reference.registry_host();
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "invalid reference format: repository name must be lowercase in {name:?}"
        ));
    }
    Ok(())
}

/// Copies a manifest or index and everything below it from a layout,
/// checking every blob's digest and size against its descriptor, the size
/// limits of manifests and configs, and that each image manifest and its
/// config make a valid image (attestation manifests excepted).
fn ingest_tree(
    store: &LocalStore,
    files: &Files<'_>,
    root: &Digest,
    root_claim: &Claim<'_>,
    archive: &Path,
) -> Result<()> {
    let mut stack = vec![(
        root.clone(),
        root_claim.field.to_string(),
        root_claim.holder.to_string(),
        root_claim.size,
        false,
    )];
    while let Some((digest, field, holder, size, attestation)) = stack.pop() {
        check_size("manifest", digest.as_str(), size, MAX_MANIFEST_SIZE)?;
        let path = format!("blobs/{}/{}", digest.algorithm(), digest.hex());
        let claim = Claim {
            field: &field,
            holder: &holder,
            size,
        };
        files.ingest(store, &path, Some(&digest), Some(&claim), archive)?;
        let (manifest, _) = read_manifest(store, &digest)?;
        for (i, child) in manifest.children().into_iter().enumerate() {
            let d = descriptor_digest(child, digest.as_str())?;
            let t = child.media_type().to_string();
            if media::is_manifest(&t) || media::is_index(&t) {
                stack.push((
                    d,
                    format!("manifests[{i}].size"),
                    digest.to_string(),
                    child.size(),
                    is_attestation(child),
                ));
                continue;
            }
            let (field, limit) = match (&manifest, i) {
                (Manifest::Image(_), 0) => ("config.size".to_string(), Some(MAX_CONFIG_SIZE)),
                (Manifest::Image(_), _) => (format!("layers[{}].size", i - 1), None),
                (Manifest::Index(_), _) => (format!("manifests[{i}].size"), None),
            };
            if let Some(limit) = limit {
                check_size("config", d.as_str(), child.size(), limit)?;
            }
            let p = format!("blobs/{}/{}", d.algorithm(), d.hex());
            let claim = Claim {
                field: &field,
                holder: digest.as_str(),
                size: child.size(),
            };
            files.ingest(store, &p, Some(&d), Some(&claim), archive)?;
        }
        if let (Manifest::Image(image), false) = (&manifest, attestation) {
            validate_image(store, &digest, image)?;
        }
    }
    Ok(())
}

/// Turns one docker-archive image into an OCI manifest in the store: the
/// config as is, the layer files as they are (compressed or not), and a
/// manifest kiln writes.
fn import_docker_entry(
    store: &LocalStore,
    files: &Files<'_>,
    entry: &ArchiveManifestEntry,
    archive: &Path,
) -> Result<Digest> {
    let config_expected = Path::new(&entry.config)
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
    let config = files.ingest(
        store,
        &entry.config,
        config_expected.as_ref(),
        None,
        archive,
    )?;
    check_size(
        "config",
        config.as_str(),
        store.size(&config).unwrap_or(0),
        MAX_CONFIG_SIZE,
    )?;
    let mut layers = Vec::new();
    for layer in &entry.layers {
        let digest = files.ingest(store, layer, None, None, archive)?;
        let size = store.size(&digest).unwrap_or(0);
        let mut head = [0u8; 4];
        let n = store.open(&digest)?.read(&mut head).unwrap_or(0);
        let media_type = media::MediaFamily::Oci.layer(LayerCompression::detect(&head[..n]));
        layers.push(
            serde_json::json!({"mediaType": media_type, "digest": digest.as_str(), "size": size}),
        );
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": media::OCI_CONFIG,
            "digest": config.as_str(),
            "size": store.size(&config).unwrap_or(0),
        },
        "layers": layers,
    });
    let invalid = |e: serde_json::Error| ArchiveError::Invalid {
        archive: archive.to_path_buf(),
        path: "manifest.json".into(),
        message: e.to_string(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(invalid)?;
    let image = serde_json::from_slice(&bytes).map_err(invalid)?;
    let digest = Digest::sha256(&bytes);
    validate_image(store, &digest, &image)?;
    Ok(store.write_blob(&bytes, Some(&digest))?)
}
