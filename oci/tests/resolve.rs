//! From a reference or an OCI layout to an image's manifest digest and
//! config (kiln_oci::resolve), on a real store and the busybox layout the
//! project ships in ../shared/bases.

use kiln_oci::resolve::{config_of, layout_config, stored_config};
use kiln_oci::{Digest, LocalStore, Platform, Reference, ResolveError};

const BUSYBOX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/bases/busybox");
const MANIFEST: &str = "sha256:a59446df9cb18641a9c12ac32e7402b37b7fcb3655dff61498cfc6279f198c09";

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(dir.path().join("store")).expect("store opens");
    (dir, store)
}

fn amd64() -> Platform {
    "linux/amd64".parse().expect("platform")
}

#[test]
fn a_layout_resolves_by_its_only_image_its_tag_and_its_digest() {
    let (_dir, store) = store();
    for layout in [
        BUSYBOX.to_string(),
        format!("{BUSYBOX}:latest"),
        format!("{BUSYBOX}@{MANIFEST}"),
    ] {
        let found = layout_config(&store, &layout, &amd64()).expect(&layout);
        assert_eq!(found.manifest.as_str(), MANIFEST, "{layout}");
        assert_eq!(found.config.os, "linux");
        assert_eq!(found.config.architecture, "amd64");
    }
    let err = layout_config(&store, &format!("{BUSYBOX}:nope"), &amd64()).expect_err("no tag");
    assert!(matches!(err, ResolveError::NoMatch(_)));
    assert_eq!(
        err.to_string(),
        format!("oci-layout://{BUSYBOX}:nope: no matching image in the layout")
    );
}

#[test]
fn the_store_resolves_names_it_has_and_says_none_for_others() {
    let (_dir, store) = store();
    let reference = Reference::parse("busybox:1").expect("reference");
    assert!(stored_config(&store, &reference, &amd64())
        .expect("lookup")
        .is_none());
    layout_config(&store, BUSYBOX, &amd64()).expect("load");
    let manifest = MANIFEST.parse::<Digest>().expect("digest");
    store
        .set_ref(&reference.to_string(), &manifest)
        .expect("tag");
    let found = stored_config(&store, &reference, &amd64())
        .expect("lookup")
        .expect("found");
    assert_eq!(found.manifest, manifest);
    assert!(found
        .config
        .config
        .env
        .iter()
        .flatten()
        .any(|e| e.starts_with("PATH=")));
}

#[test]
fn errors_name_what_was_asked_for() {
    let (_dir, store) = store();
    layout_config(&store, BUSYBOX, &amd64()).expect("load");
    let manifest = MANIFEST.parse::<Digest>().expect("digest");
    let missing = Digest::sha256(b"not stored");
    let err = config_of(&store, "base:1", &missing, &amd64()).expect_err("missing");
    assert!(matches!(err, ResolveError::Image { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("base:1: "),
        "{err} names the reference"
    );
    config_of(&store, "base:1", &manifest, &amd64()).expect("present");
}
