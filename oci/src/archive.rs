//! Image files users exchange: OCI image layouts (a directory or a tar of
//! one) and docker-archive tarballs (`manifest.json` + `repositories`, as
//! `docker save` writes and `docker load` reads).
//!
//! Export walks the store; import copies blobs into the store through
//! verified commits, so a damaged archive never leaves a bad blob behind,
//! and names images only after every blob they reference is in.

use crate::digest::Digest;
use crate::image::{
    check_size, descriptor_digest, is_attestation, reachable, read_manifest, resolve,
    validate_image, Manifest, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::media::{self, LayerCompression};
use crate::platform::Platform;
use crate::store::{BlobIngester, BlobReader, LocalStore, StoreError};
use crate::ImageError;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// The annotation naming an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and BuildKit use for the full image name.
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// What can go wrong reading or writing an image file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// An I/O error on a path of the archive or layout.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The input is neither an OCI layout nor a docker-archive.
    #[error("{0}: not an OCI image layout (no index.json) or docker-archive (no manifest.json)")]
    UnknownFormat(PathBuf),
    /// The input file is not a tar (nor a gzip of one), so it is none of
    /// the formats `load` reads.
    #[error("{0}: not an image archive: neither a tar of an OCI image layout nor a docker-archive (nor an OCI layout directory)")]
    NotAnArchive(PathBuf),
    /// A JSON file of the archive is invalid.
    #[error("{path} in {archive}: {message}")]
    Invalid {
        /// The archive or layout.
        archive: PathBuf,
        /// The file inside it.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A file the archive's manifest names is not in it.
    #[error("{archive} names {path}, which it does not contain")]
    Missing {
        /// The archive or layout.
        archive: PathBuf,
        /// The missing entry.
        path: String,
    },
    /// A blob file does not hash to the digest in its name.
    #[error("{archive}: blob {expected} is damaged (its content hashes to {actual})")]
    Corrupt {
        /// The archive or layout.
        archive: PathBuf,
        /// The digest its name claims.
        expected: Digest,
        /// What it really is.
        actual: Digest,
    },
    /// An image could not be read from the store.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for archive results.
pub type Result<T> = std::result::Result<T, ArchiveError>;

fn aio(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io {
        action,
        path,
        source,
    }
}

/// An image to export: its names and the digest of its manifest or index.
#[derive(Debug, Clone)]
pub struct NamedImage {
    /// Full references (`docker.io/library/busybox:latest`); may be empty.
    pub names: Vec<String>,
    /// The manifest or index digest.
    pub digest: Digest,
}

/// An image found in an archive: the name it carried (if any) and its
/// digest, now in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The name the archive gave it (`busybox:latest` or a bare tag from an
    /// OCI layout's ref-name annotation).
    pub name: Option<String>,
    /// The manifest or index digest.
    pub digest: Digest,
}

// ---------------------------------------------------------------- OCI layout

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

/// Puts the store's blob `digest` into the OCI layout at `dir`: hard-linked
/// when on the same filesystem, copied (through a temporary file)
/// otherwise; a blob already there is kept.
///
/// # Errors
/// I/O errors naming the path.
pub fn put_layout_blob(store: &LocalStore, digest: &Digest, dir: &Path) -> Result<()> {
    let dest = dir
        .join("blobs")
        .join(digest.algorithm())
        .join(digest.hex());
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

/// A tar writer with fixed metadata, so the same images give the same
/// bytes.
struct TarOut<W: Write> {
    builder: tar::Builder<W>,
    dirs: std::collections::BTreeSet<String>,
}

impl<W: Write> TarOut<W> {
    fn new(w: W) -> TarOut<W> {
        TarOut {
            builder: tar::Builder::new(w),
            dirs: Default::default(),
        }
    }

    fn header(size: u64, kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn ensure_dirs(&mut self, path: &str) -> io::Result<()> {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            prefix.push_str(part);
            prefix.push('/');
            if self.dirs.insert(prefix.clone()) {
                let mut h = Self::header(0, tar::EntryType::Directory, 0o755);
                self.builder.append_data(&mut h, &prefix, io::empty())?;
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &str, size: u64, data: impl Read) -> io::Result<()> {
        self.ensure_dirs(path)?;
        let mut h = Self::header(size, tar::EntryType::Regular, 0o644);
        self.builder.append_data(&mut h, path, data)
    }

    fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
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

// ------------------------------------------------------------ docker-archive

#[derive(serde::Serialize, serde::Deserialize)]
struct ArchiveManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

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
                append_uncompressed(&mut tar, store, &digest, layer.media_type().as_ref(), &path)?;
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

/// Appends a layer to the tar uncompressed (docker-archive layers are plain
/// tars), staging a decompressed copy in the store's ingest directory to
/// learn its size first.
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
    let file = store.open(digest)?;
    match compression {
        LayerCompression::None => {
            let size = store.size(digest).unwrap_or(0);
            tar.file(path, size, file).map_err(err)
        }
        LayerCompression::Gzip | LayerCompression::Zstd => {
            // A docker-archive holds plain layer tars (as `docker save`
            // writes them): decompress to a staging file for its size.
            let staged = store.root().join("ingest").join(format!(
                "{}-unpack-{}",
                std::process::id(),
                digest.hex()
            ));
            let result = (|| {
                let mut out = File::create(&staged).map_err(aio("creating", &staged))?;
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

// ------------------------------------------------------------------- import

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
                let mut w = store.writer()?;
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
        let mut w = store.writer()?;
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
