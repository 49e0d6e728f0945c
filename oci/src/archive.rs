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

mod docker;
mod import;
mod layout;

pub use docker::write_docker_archive;
pub use import::{load, load_tar};
pub use layout::{
    init_layout_dir, layout_blob_path, put_layout_blob, write_layout_dir, write_layout_tar,
};

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

/// A tar writer with fixed metadata, so the same images give the same
/// bytes.
pub(super) struct TarOut<W: Write> {
    builder: tar::Builder<W>,
    dirs: std::collections::BTreeSet<String>,
}

impl<W: Write> TarOut<W> {
    pub(super) fn new(w: W) -> TarOut<W> {
        TarOut {
            builder: tar::Builder::new(w),
            dirs: Default::default(),
        }
    }

    pub(super) fn header(size: u64, kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub(super) fn ensure_dirs(&mut self, path: &str) -> io::Result<()> {
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

    pub(super) fn file(&mut self, path: &str, size: u64, data: impl Read) -> io::Result<()> {
        self.ensure_dirs(path)?;
        let mut h = Self::header(size, tar::EntryType::Regular, 0o644);
        self.builder.append_data(&mut h, path, data)
    }

    pub(super) fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

/// An entry of a docker-archive's `manifest.json`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct ArchiveManifestEntry {
    #[serde(rename = "Config")]
    pub(super) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(super) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub(super) layers: Vec<String>,
}
