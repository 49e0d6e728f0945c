//! The base images in the shared test data (`../shared/bases`, a sibling of
//! the repository), with the digests tests pin.

/// The OCI image layout of busybox shared by the tests (tag `latest` in its index).
pub const BUSYBOX_LAYOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/bases/busybox");

/// Digest of the busybox manifest in [`BUSYBOX_LAYOUT`] (an OCI image manifest).
pub const BUSYBOX_DIGEST: &str =
    "sha256:a59446df9cb18641a9c12ac32e7402b37b7fcb3655dff61498cfc6279f198c09";

/// Digest of the busybox config blob in [`BUSYBOX_LAYOUT`].
pub const BUSYBOX_CONFIG: &str =
    "sha256:a7553ea6afa3aa5fe7d8d9d55a29a32bda0eea88b46b4ec98c57d3d24ea1c8fc";

/// Digest of busybox's only layer (gzip) in [`BUSYBOX_LAYOUT`].
pub const BUSYBOX_LAYER: &str =
    "sha256:d83a308413b8acb7cc8807ec15a786c10f5ecc5da57af786b9a351120a3ad03a";
