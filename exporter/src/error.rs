//! The exporter's error type.

use kiln_oci::archive;
use std::path::PathBuf;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// An `--output` value is invalid.
    #[error("invalid --output {value:?}: {reason}")]
    BadTarget {
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Output options that do not go together.
    #[error("{0}")]
    Options(String),
    /// A layer could not be converted for the output.
    #[error("{0}")]
    Layer(String),
    /// The build was cancelled while a layer was being converted.
    #[error("cancelled")]
    Cancelled,
    /// Writing failed.
    #[error("writing {path}: {message}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] kiln_oci::StoreError),
    /// An archive codec failed.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
}
