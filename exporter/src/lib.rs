//! kiln-exporter: turns a built filesystem and its config into an image
//! and writes it where `--output` says.
//!
//! - [`write_image`]: config blob + manifest in the content store.
//! - [`ExportTarget`]: `--output` values (`type=image|oci|docker|local|tar`),
//!   parsed with [`std::str::FromStr`] like `docker buildx build` reads them.
//! - [`export`]: writes one target.
#![deny(missing_docs)]

mod image;
mod target;

pub use image::{write_image, BuiltImage, BuiltLayer};
pub use target::{export, ExportError, ExportTarget};
