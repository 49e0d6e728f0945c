//! [`Layer`]: one layer of a built filesystem, the one record the solver
//! hands on and the exporter reads.
//!
//! What the store knows of a layer is its blob (`blob`, `size`,
//! `media_type`) and its uncompressed digest (`diff_id`), which also names
//! its unpacked directory ([`StoreLayout::layer_dir`]). What the build adds
//! is where the directory is (`dir`, the store's, or any directory for a
//! layer made outside a store) and whether the layer came from a base
//! image (`from_image`), which decides whether an export may recompress
//! it.

use crate::digest::Digest;
use crate::layout::StoreLayout;
use std::path::PathBuf;

/// One layer of a built filesystem: its blob in the store and its
/// unpacked directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The unpacked layer directory (overlay format).
    pub dir: PathBuf,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Its blob in the store: for a layer a build step made, the
    /// uncompressed tar (then equal to `diff_id`); outputs convert it.
    pub blob: Digest,
    /// Blob size.
    pub size: u64,
    /// Blob media type.
    pub media_type: String,
    /// It comes from a base image (exports keep its blob unless told to
    /// recompress everything), not from a build step.
    pub from_image: bool,
}

impl Layer {
    /// A layer a build step made (or a cache record holds), unpacked in
    /// `layout`'s directory for `diff_id`.
    pub fn in_store(
        layout: &StoreLayout,
        diff_id: Digest,
        blob: Digest,
        size: u64,
        media_type: impl Into<String>,
    ) -> Layer {
        Layer {
            dir: layout.layer_dir(&diff_id),
            diff_id,
            blob,
            size,
            media_type: media_type.into(),
            from_image: false,
        }
    }

    /// The same layer, as one of a base image.
    pub fn of_base_image(self) -> Layer {
        Layer {
            from_image: true,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_lives_in_the_directory_of_its_diff_id() {
        let layout = StoreLayout::new("/s");
        let diff: Digest = format!("sha256:{}", "1".repeat(64))
            .parse()
            .expect("digest");
        let blob: Digest = format!("sha256:{}", "2".repeat(64))
            .parse()
            .expect("digest");
        let built = Layer::in_store(&layout, diff.clone(), blob.clone(), 7, "m");
        assert_eq!(
            built.dir,
            PathBuf::from(format!("/s/layers/{}", "1".repeat(64)))
        );
        assert!(!built.from_image);
        let base = built.clone().of_base_image();
        assert!(base.from_image);
        assert_eq!(
            (&base.dir, &base.diff_id, &base.blob),
            (&built.dir, &diff, &blob)
        );
        assert_eq!((base.size, base.media_type.as_str()), (7, "m"));
    }
}
