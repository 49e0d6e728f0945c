//! kiln-exporter: turns what a build made (a layer stack, its layers and
//! an image config) into an image, and writes it where `--output` says.
//!
//! The public face, in the order a build uses it:
//! - [`ExportTarget`]: one `--output` value
//!   (`type=image|registry|oci|docker|local|tar`), parsed with
//!   [`std::str::FromStr`] as `docker buildx build` reads it, with its
//!   [`ImageOptions`] (compression, media types, rewritten timestamps).
//! - [`BuiltImage`] and its layers ([`kiln_oci::Layer`]): the build's
//!   result, as the caller hands it in.
//! - [`write_image`]: the layer blobs as the options want them (converted
//!   ones are remembered in the store), the config and the manifest, in
//!   the content store; [`write_index`] puts several platforms' images
//!   under one index. Both return a [`WrittenImage`].
//! - [`prepare_layer`]: the same conversion of one new layer, run by a
//!   build in the background as soon as its step is done, and
//!   [`compress_image`]: an image in the store with its uncompressed
//!   layers compressed (`kiln push`, `kiln save`).
//! - [`export`]: writes one target: names in the image store, an OCI
//!   layout (tar or directory), a docker-archive, or the filesystem as a
//!   directory or tar. Pushing is the caller's, with
//!   [`ExportTarget::push_names`] and a registry client.
//!
//! - [`attest`]: SLSA provenance and SPDX SBOM attestations, as
//!   attestation manifests of the index or OCI 1.1 referrers.
//!
//! Failures are [`ExportError`]s naming the output or the destination.
//!
//! ```
//! use kiln_exporter::{ExportTarget, ImageOptions};
//!
//! let target: ExportTarget = "type=oci,dest=out,tar=false,name=app:1".parse().unwrap();
//! assert_eq!(
//!     target,
//!     ExportTarget::Oci {
//!         dest: "out".into(),
//!         tar: false,
//!         names: vec!["app:1".into()],
//!         options: ImageOptions::default(),
//!     }
//! );
//! assert!(target.push_names().is_empty());
//! assert!("type=zip,dest=x".parse::<ExportTarget>().is_err());
//! ```
#![deny(missing_docs)]

pub mod attest;
mod error;
mod image;
mod layers;
mod options;
mod target;

pub use error::ExportError;
pub use image::{write_image, write_index, BuiltImage, WrittenImage};
pub use layers::{compress_image, compress_layer, prepare_layer};
pub use options::ImageOptions;
pub use target::{export, ExportTarget};
