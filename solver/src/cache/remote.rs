//! Build cache shared between machines (`--cache-to`, `--cache-from`).
//!
//! An exported cache is one OCI image manifest: its config (media type
//! [`CACHE_CONFIG_MEDIA_TYPE`]) lists the cache records (key -> the layer
//! the step made) and its layers are those layers' blobs. It goes to a
//! registry under a tag, or into an OCI layout directory; `skopeo` and
//! `umoci` read either. Keys are portable: they cover ops, input keys and
//! context content, never paths, secrets or times.
//!
//! `--cache-to type=inline` keeps the records of the image's own steps in
//! its config instead (under [`FORMAT`]), so the image is its own cache;
//! the importer takes each layer from the image's manifest by diff id.
//!
//! An imported cache ([`CacheSource`]) is read once when the build starts;
//! a blob is fetched only when a step hits its record, then kept in the
//! local store and cache like a layer built here.

use super::index::CachedLayer;
use super::mounts::ExportedMount;
use kiln_oci::{
    media, BlobIngester, BlobReader, BlobStore, Digest, LocalStore, Reference, RegistryClient,
    RegistryError, StoreError,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The media type of an exported cache's config.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";

/// What an exported cache's config says it is; also the image config key
/// an inline cache is kept under.
pub const FORMAT: &str = "kiln.cache.v1";

/// Why a cache could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteCacheError {
    /// The registry refused or failed (the cause is the error's source).
    #[error("{reference}")]
    Registry {
        /// The cache reference.
        reference: String,
        /// What went wrong.
        source: Box<RegistryError>,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing an OCI layout directory failed.
    #[error(transparent)]
    Layout(#[from] kiln_oci::archive::ArchiveError),
    /// A file of a cache directory (the cause is the error's source).
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The artifact is not a kiln cache, or is damaged.
    #[error("{location}: {message}")]
    Format {
        /// Where it was read from.
        location: String,
        /// What is wrong.
        message: String,
    },
}

/// One exported record: a cache key and the layer its step made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedRecord {
    /// The cache key.
    pub key: String,
    /// The layer's uncompressed digest.
    pub diff_id: String,
    /// The layer's blob.
    pub blob: String,
    /// The blob's size.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
}

impl ExportedRecord {
    /// The record of `layer` under `key`.
    pub fn new(key: &Digest, layer: &CachedLayer) -> ExportedRecord {
        ExportedRecord {
            key: key.to_string(),
            diff_id: layer.diff_id.clone(),
            blob: layer.blob.clone(),
            size: layer.size,
            media_type: layer.media_type.clone(),
        }
    }

    fn layer(&self) -> CachedLayer {
        CachedLayer {
            diff_id: self.diff_id.clone(),
            blob: self.blob.clone(),
            size: self.size,
            media_type: self.media_type.clone(),
            last_used: None,
        }
    }
}

/// The config blob of an exported cache.
#[derive(Debug, Serialize, Deserialize)]
struct CacheConfig {
    format: String,
    records: Vec<ExportedRecord>,
    /// Cache mounts (`cache-mounts=true`); absent otherwise, so caches
    /// without them keep their digests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<ExportedMount>,
}

/// Which steps `--cache-to` exports (`mode=` as in buildx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Only the steps whose layers are in the image (the default).
    #[default]
    Min,
    /// Every step of the build, other stages included.
    Max,
}

impl std::str::FromStr for CacheMode {
    type Err = CacheModeError;

    fn from_str(s: &str) -> Result<CacheMode, CacheModeError> {
        match s {
            "min" => Ok(CacheMode::Min),
            "max" => Ok(CacheMode::Max),
            other => Err(CacheModeError(other.to_string())),
        }
    }
}

/// A `mode=` value that is neither `min` nor `max` (the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mode={0}: expected min or max")]
pub struct CacheModeError(pub String);

/// Why a [`CacheSource`] could not deliver a blob. The text names the
/// cache (or the file) and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The record names its blob with an invalid digest.
    #[error(transparent)]
    Digest(#[from] kiln_oci::DigestError),
    /// The registry refused or failed.
    #[error("{reference}: {error}")]
    Registry {
        /// The cache reference.
        reference: String,
        /// What went wrong.
        error: Box<RegistryError>,
    },
    /// A file of a cache directory could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The local store refused the blob (the size or digest is wrong, or
    /// it could not be written); `location` is where it came from.
    #[error("{}{error}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Store {
        /// The cache, when the text names it.
        location: Option<String>,
        /// What went wrong.
        error: StoreError,
    },
    /// Another implementation's failure, as it says it.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// A cache read with `--cache-from`, as the solver consults it.
pub trait CacheSource: Send + Sync {
    /// Where it comes from, for messages.
    fn name(&self) -> String;
    /// The layer recorded under `key`.
    fn lookup(&self, key: &Digest) -> Option<CachedLayer>;
    /// Brings `layer`'s blob into `store` (verified). Called from the
    /// solver's worker threads, outside the async runtime.
    ///
    /// # Errors
    /// Why the blob could not be had.
    fn fetch(&self, layer: &CachedLayer, store: &LocalStore) -> Result<(), FetchError>;
    /// The cache mounts it carries (`--cache-to ...,cache-mounts=true`);
    /// their chunks come through [`CacheSource::fetch`].
    fn mounts(&self) -> Vec<ExportedMount> {
        Vec::new()
    }
}

impl std::fmt::Debug for dyn CacheSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheSource({})", self.name())
    }
}

/// The records of a cache config, by key.
fn parse_records(
    bytes: &[u8],
    location: &str,
) -> Result<HashMap<String, CachedLayer>, RemoteCacheError> {
    parse_config(bytes, location).map(|(records, _)| records)
}

/// The records of a cache config, by key, and its cache mounts.
fn parse_config(
    bytes: &[u8],
    location: &str,
) -> Result<(HashMap<String, CachedLayer>, Vec<ExportedMount>), RemoteCacheError> {
    let config: CacheConfig =
        serde_json::from_slice(bytes).map_err(|e| RemoteCacheError::Format {
            location: location.to_string(),
            message: format!("not a kiln build cache: {e}"),
        })?;
    if config.format != FORMAT {
        return Err(RemoteCacheError::Format {
            location: location.to_string(),
            message: format!("cache format {:?}, expected {FORMAT:?}", config.format),
        });
    }
    let records = config
        .records
        .into_iter()
        .map(|r| (r.key.clone(), r.layer()))
        .collect();
    Ok((records, config.mounts))
}

/// The value `--cache-to type=inline` puts under the [`FORMAT`] key of
/// the image config: the records of the image's own steps.
pub fn inline_value(records: &[ExportedRecord]) -> serde_json::Value {
    serde_json::json!({ "format": FORMAT, "records": records })
}

/// The records an image config carries inline, their blobs taken from the
/// image's manifest (an output may have recompressed the layers since):
/// the layer whose diff id matches, by position in `rootfs.diff_ids`.
/// Records of layers the image does not have are dropped.
fn inline_records(
    config: &[u8],
    manifest: &kiln_oci::Manifest,
    location: &str,
) -> Result<HashMap<String, CachedLayer>, RemoteCacheError> {
    let format_err = |message: String| RemoteCacheError::Format {
        location: location.to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| format_err(format!("config: {e}")))?;
    let Some(inline) = value.get(FORMAT) else {
        return Err(format_err(
            "neither a kiln build cache nor an image with one inline (build it with --cache-to type=inline)"
                .to_string(),
        ));
    };
    let records = parse_records(inline.to_string().as_bytes(), location)?;
    let kiln_oci::Manifest::Image(image) = manifest else {
        return Err(format_err("an index has no inline cache".into()));
    };
    let diff_ids: Vec<&str> = value["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    let mut layers = HashMap::new();
    for (diff_id, desc) in diff_ids.iter().zip(image.layers()) {
        layers.insert(
            diff_id.to_string(),
            (
                desc.digest().to_string(),
                desc.size(),
                desc.media_type().to_string(),
            ),
        );
    }
    Ok(records
        .into_iter()
        .filter_map(|(key, mut layer)| {
            let (blob, size, media_type) = layers.get(&layer.diff_id)?.clone();
            layer.blob = blob;
            layer.size = size;
            layer.media_type = media_type;
            Some((key, layer))
        })
        .collect())
}

/// A cache in a registry (`type=registry,ref=...`).
pub struct RegistryCache {
    client: RegistryClient,
    reference: Reference,
    handle: tokio::runtime::Handle,
    records: HashMap<String, CachedLayer>,
    mounts: Vec<ExportedMount>,
}

impl RegistryCache {
    /// Reads the cache `reference` names. Must be called inside the tokio
    /// runtime that will serve its blob fetches.
    ///
    /// # Errors
    /// The registry's error (an unknown tag included) or a config that is
    /// not a kiln cache.
    pub async fn open(
        client: RegistryClient,
        reference: Reference,
    ) -> Result<RegistryCache, RemoteCacheError> {
        let (manifest, config) = client.fetch_artifact(&reference).await.map_err(|source| {
            RemoteCacheError::Registry {
                reference: reference.to_string(),
                source: Box::new(source),
            }
        })?;
        let location = reference.to_string();
        let is_cache = match &manifest.manifest {
            kiln_oci::Manifest::Image(m) => {
                m.config().media_type().to_string() == CACHE_CONFIG_MEDIA_TYPE
            }
            kiln_oci::Manifest::Index(_) => false,
        };
        let (records, mounts) = if is_cache {
            parse_config(&config, &location)?
        } else {
            (
                inline_records(&config, &manifest.manifest, &location)?,
                Vec::new(),
            )
        };
        Ok(RegistryCache {
            client,
            reference,
            handle: tokio::runtime::Handle::current(),
            records,
            mounts,
        })
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl CacheSource for RegistryCache {
    fn name(&self) -> String {
        self.reference.to_string()
    }

    fn mounts(&self) -> Vec<ExportedMount> {
        self.mounts.clone()
    }

    fn lookup(&self, key: &Digest) -> Option<CachedLayer> {
        self.records.get(key.as_str()).cloned()
    }

    fn fetch(&self, layer: &CachedLayer, store: &LocalStore) -> Result<(), FetchError> {
        let digest: Digest = layer.blob.parse()?;
        self.handle
            .block_on(
                self.client
                    .fetch_blob(&self.reference, &digest, layer.size, store),
            )
            .map_err(|e| FetchError::Registry {
                reference: self.reference.to_string(),
                error: Box::new(e),
            })
    }
}

/// A cache in an OCI layout directory (`type=local,src=DIR`).
pub struct LayoutCache {
    dir: PathBuf,
    records: HashMap<String, CachedLayer>,
    mounts: Vec<ExportedMount>,
}

impl LayoutCache {
    /// Reads the cache tagged `tag` in the layout at `dir`.
    ///
    /// # Errors
    /// Missing or unreadable files, no manifest with that tag, or a config
    /// that is not a kiln cache.
    pub fn open(dir: &Path, tag: &str) -> Result<LayoutCache, RemoteCacheError> {
        let location = dir.display().to_string();
        let format_err = |message: String| RemoteCacheError::Format {
            location: location.clone(),
            message,
        };
        let index: serde_json::Value =
            serde_json::from_slice(&read(&dir.join("index.json"), kiln_oci::MAX_MANIFEST_SIZE)?)
                .map_err(|e| format_err(format!("index.json: {e}")))?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        let entry = manifests
            .iter()
            .find(|m| m["annotations"][REF_NAME].as_str() == Some(tag))
            .ok_or_else(|| format_err(format!("no cache tagged {tag:?} in index.json")))?;
        let manifest_digest = digest_of(&entry["digest"], &location)?;
        let manifest: serde_json::Value = serde_json::from_slice(&read_blob(
            dir,
            &manifest_digest,
            kiln_oci::MAX_MANIFEST_SIZE,
        )?)
        .map_err(|e| format_err(format!("manifest {manifest_digest}: {e}")))?;
        let config_digest = digest_of(&manifest["config"]["digest"], &location)?;
        let (records, mounts) = parse_config(
            &read_blob(dir, &config_digest, kiln_oci::MAX_CONFIG_SIZE)?,
            &location,
        )?;
        Ok(LayoutCache {
            dir: dir.to_path_buf(),
            records,
            mounts,
        })
    }
}

impl CacheSource for LayoutCache {
    fn name(&self) -> String {
        self.dir.display().to_string()
    }

    fn mounts(&self) -> Vec<ExportedMount> {
        self.mounts.clone()
    }

    fn lookup(&self, key: &Digest) -> Option<CachedLayer> {
        self.records.get(key.as_str()).cloned()
    }

    fn fetch(&self, layer: &CachedLayer, store: &LocalStore) -> Result<(), FetchError> {
        let digest: Digest = layer.blob.parse()?;
        if store.exists(&digest) {
            return Ok(());
        }
        // Streamed: a layer may be large; never past the record's size.
        // The store verifies the digest and the size.
        let path = kiln_oci::archive::layout_blob_path(&self.dir, &digest);
        let io = |error| FetchError::Io {
            path: path.clone(),
            error,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut writer = store.writer().map_err(|error| FetchError::Store {
            location: None,
            error,
        })?;
        std::io::copy(
            &mut std::io::Read::take(file, layer.size.saturating_add(1)),
            &mut writer,
        )
        .map_err(io)?;
        writer
            .commit(Some(&digest), Some(layer.size))
            .map(|_| ())
            .map_err(|error| FetchError::Store {
                location: Some(self.dir.display().to_string()),
                error,
            })
    }
}

/// The annotation an OCI layout's index names a manifest with.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A small file of a cache layout, refused above `limit` bytes.
fn read(path: &Path, limit: u64) -> Result<Vec<u8>, RemoteCacheError> {
    let io = |source| RemoteCacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limit {
        return Err(RemoteCacheError::Format {
            location: path.display().to_string(),
            message: format!("{size} bytes; kiln reads at most {limit}"),
        });
    }
    std::fs::read(path).map_err(io)
}

fn read_blob(dir: &Path, digest: &Digest, limit: u64) -> Result<Vec<u8>, RemoteCacheError> {
    let bytes = read(&kiln_oci::archive::layout_blob_path(dir, digest), limit)?;
    if Digest::sha256(&bytes) != *digest {
        return Err(RemoteCacheError::Format {
            location: dir.display().to_string(),
            message: format!("blob {digest} does not match its digest"),
        });
    }
    Ok(bytes)
}

/// The digest of the descriptor field `value` of the cache at `location`.
fn digest_of(value: &serde_json::Value, location: &str) -> Result<Digest, RemoteCacheError> {
    let format_err = |message: String| RemoteCacheError::Format {
        location: location.to_string(),
        message,
    };
    value
        .as_str()
        .ok_or_else(|| format_err("a descriptor has no digest".to_string()))?
        .parse()
        .map_err(|e| format_err(format!("{e}")))
}

/// A cache artifact written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The manifest's digest.
    pub manifest: Digest,
    /// The manifest's size in bytes.
    pub size: u64,
    /// What the manifest refers to: its config, then the layer blobs.
    pub blobs: Vec<Digest>,
}

/// Writes `records` as a cache artifact into `store` (config, then
/// manifest; the layer blobs must be there). Records are sorted and
/// deduplicated so the same cache gives the same digest.
///
/// # Errors
/// A layer blob missing from the store or named by an invalid digest, or
/// store errors.
pub fn write_artifact(
    store: &dyn BlobStore,
    records: &[ExportedRecord],
) -> Result<Artifact, RemoteCacheError> {
    write_artifact_with(store, records, &[])
}

/// [`write_artifact`] with cache mounts: their chunks are layers after
/// the records' layers, in the mounts' order (by id), each blob once.
///
/// # Errors
/// As [`write_artifact`]; a chunk missing from the store too.
pub fn write_artifact_with(
    store: &dyn BlobStore,
    records: &[ExportedRecord],
    mounts: &[ExportedMount],
) -> Result<Artifact, RemoteCacheError> {
    let mut by_key: BTreeMap<&str, &ExportedRecord> = BTreeMap::new();
    for r in records {
        by_key.insert(&r.key, r);
    }
    let records: Vec<ExportedRecord> = by_key.into_values().cloned().collect();
    let mut layers: BTreeMap<Digest, &ExportedRecord> = BTreeMap::new();
    for r in &records {
        let digest: Digest = r.blob.parse().map_err(|e| RemoteCacheError::Format {
            location: "the build cache".into(),
            message: format!("{e}"),
        })?;
        if !store.exists(&digest) {
            return Err(StoreError::NotFound(digest).into());
        }
        layers.insert(digest, r);
    }
    // Plain data always serialises.
    let mut mounts = mounts.to_vec();
    mounts.sort_by(|a, b| a.id.cmp(&b.id));
    let mut chunk_layers: Vec<(Digest, serde_json::Value)> = Vec::new();
    for chunk in mounts.iter().flat_map(|m| &m.chunks) {
        let digest: Digest = chunk.blob.parse().map_err(|e| RemoteCacheError::Format {
            location: "the build cache".into(),
            message: format!("{e}"),
        })?;
        if !store.exists(&digest) {
            return Err(StoreError::NotFound(digest).into());
        }
        if layers.contains_key(&digest) || chunk_layers.iter().any(|(d, _)| *d == digest) {
            continue;
        }
        chunk_layers.push((
            digest,
            serde_json::json!({
                "mediaType": chunk.media_type,
                "digest": chunk.blob,
                "size": chunk.size,
            }),
        ));
    }
    let config = serde_json::to_vec(&CacheConfig {
        format: FORMAT.to_string(),
        records: records.clone(),
        mounts,
    })
    .unwrap_or_default();
    let config_digest = store.write_blob(&config, None)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": CACHE_CONFIG_MEDIA_TYPE,
            "digest": config_digest.as_str(),
            "size": config.len(),
        },
        "layers": layers.values().map(|r| serde_json::json!({
            "mediaType": r.media_type,
            "digest": r.blob,
            "size": r.size,
        })).chain(chunk_layers.iter().map(|(_, v)| v.clone())).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    let mut blobs = vec![config_digest];
    blobs.extend(layers.into_keys());
    blobs.extend(chunk_layers.into_iter().map(|(d, _)| d));
    Ok(Artifact {
        manifest: store.write_blob(&bytes, None)?,
        size: bytes.len() as u64,
        blobs,
    })
}

/// Pushes `records` and their layers, and the chunks of `mounts`, to
/// `reference` (`type=registry`); blobs the registry has are not sent.
/// Returns what the push did.
///
/// # Errors
/// As [`write_artifact`], plus the registry's errors.
pub async fn export_to_registry(
    store: &LocalStore,
    client: &RegistryClient,
    records: &[ExportedRecord],
    mounts: &[ExportedMount],
    reference: &Reference,
    observer: Arc<dyn kiln_oci::TransferObserver>,
) -> Result<kiln_oci::PushReport, RemoteCacheError> {
    let manifest = write_artifact_with(store, records, mounts)?.manifest;
    client
        .push(store, &manifest, reference, observer)
        .await
        .map_err(|source| RemoteCacheError::Registry {
            reference: reference.to_string(),
            source: Box::new(source),
        })
}

/// Writes `records` and their layers (and the chunks of `mounts`) into
/// the OCI layout at `dir` under
/// `tag` (`type=local,dest=DIR`); other tags in the layout are kept.
///
/// # Errors
/// As [`write_artifact`], plus I/O errors naming the file.
pub fn export_to_layout(
    store: &LocalStore,
    records: &[ExportedRecord],
    mounts: &[ExportedMount],
    dir: &Path,
    tag: &str,
) -> Result<Digest, RemoteCacheError> {
    let artifact = write_artifact_with(store, records, mounts)?;
    kiln_oci::archive::init_layout_dir(dir)?;
    for digest in std::iter::once(&artifact.manifest).chain(&artifact.blobs) {
        kiln_oci::archive::put_layout_blob(store, digest, dir)?;
    }
    // Keep the layout's other entries; replace the one with this tag.
    let index_path = dir.join("index.json");
    let mut entries: Vec<serde_json::Value> = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["manifests"].as_array().cloned())
        .unwrap_or_default();
    entries.retain(|m| m["annotations"][REF_NAME].as_str() != Some(tag));
    entries.push(serde_json::json!({
        "mediaType": media::OCI_MANIFEST,
        "digest": artifact.manifest.as_str(),
        "size": artifact.size,
        "annotations": { REF_NAME: tag },
    }));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    });
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RemoteCacheError::Io { path, source }
    };
    let tmp = index_path.with_extension("tmp");
    std::fs::write(&tmp, index.to_string()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &index_path).map_err(io(&index_path))?;
    Ok(artifact.manifest)
}
