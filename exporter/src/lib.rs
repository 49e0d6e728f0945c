//! kiln-exporter: turns a built filesystem and its config into an image
//! and writes it where `--output` says.
//!
//! - [`write_image`]: layer blobs as an output wants them ([`ImageOptions`]:
//!   compression, media types, rewritten timestamps), config blob and
//!   manifest in the content store.
//! - [`ExportTarget`]: `--output` values
//!   (`type=image|registry|oci|docker|local|tar`), parsed with
//!   [`std::str::FromStr`] like `docker buildx build` reads them.
//! - [`export`]: writes one target (pushing is the caller's, with a
//!   registry client).
#![deny(missing_docs)]

mod image;
mod layers;
mod target;

pub use image::{write_image, write_index, BuiltImage, BuiltLayer, ImageOptions, WrittenImage};
pub use target::{export, ExportError, ExportTarget};
