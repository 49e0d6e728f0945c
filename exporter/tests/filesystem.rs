//! Filesystem outputs (`type=local`, `type=tar`) and the image store
//! output (`type=image`): the merged filesystem of the layers, the same one
//! umoci unpacks from the image's OCI layout.

mod fixture;

use fixture::{tree, umoci_tree, Fixture, NAME, TAG};
use kiln_exporter::{export, ExportTarget, ImageOptions};
use std::os::unix::fs::MetadataExt as _;

#[test]
fn local_directory_is_what_umoci_unpacks_from_the_image() {
    let f = Fixture::new();
    let dest = f.path("out");
    // A filesystem output needs no written image.
    export(
        &f.store,
        &ExportTarget::Local { dest: dest.clone() },
        &f.image,
        None,
    )
    .expect("export local");
    assert_eq!(tree(&dest), fixture::expected_tree());

    let options = ImageOptions::default();
    let written = f.write(&options, &[]);
    let layout = f.path("layout");
    let target = ExportTarget::Oci {
        dest: layout.clone(),
        tar: false,
        names: vec![NAME.to_string()],
        options,
    };
    export(&f.store, &target, &f.image, Some(&written)).expect("export oci");
    assert_eq!(umoci_tree(&layout, TAG, &f.path("bundle")), tree(&dest));
    // File times come from the layers.
    let md = std::fs::symlink_metadata(dest.join("etc/hello")).expect("lstat");
    assert_eq!(md.mtime() as u64, fixture::LAYER_MTIME);
}

#[test]
fn rootfs_tar_holds_the_merged_filesystem() {
    let f = Fixture::new();
    let file = f.path("rootfs.tar");
    export(
        &f.store,
        &ExportTarget::Tar { dest: file.clone() },
        &f.image,
        None,
    )
    .expect("export tar");
    let mut listed = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&file).expect("rootfs tar"));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => "d",
            tar::EntryType::Symlink => "l",
            tar::EntryType::Regular => "f",
            other => panic!("unexpected entry type {other:?}"),
        };
        let owner = format!("{}:{}", h.uid().expect("uid"), h.gid().expect("gid"));
        let mode = h.mode().expect("mode") & 0o7777;
        let path = entry.path().expect("path").display().to_string();
        let path = path.trim_end_matches('/').to_string();
        listed.push(match kind {
            "d" => format!("{path} d {mode:o} {owner}"),
            "l" => {
                let target = entry.link_name().expect("link").expect("target");
                format!("{path} l {owner} -> {}", target.display())
            }
            _ => {
                let mut content = String::new();
                std::io::Read::read_to_string(&mut entry, &mut content).expect("content");
                format!("{path} f {mode:o} {owner} {content}")
            }
        });
    }
    listed.sort();
    assert_eq!(listed, fixture::expected_tree());
}

#[test]
fn image_output_names_the_image_in_the_store() {
    let f = Fixture::new();
    let target: ExportTarget = format!("type=image,\"name={NAME},app:2\"")
        .parse()
        .expect("--output");
    let written = f.write(target.image_options().expect("options"), &[]);
    assert!(target.push_names().is_empty());
    export(&f.store, &target, &f.image, Some(&written)).expect("export");
    for name in [NAME, "app:2"] {
        assert_eq!(
            f.store.get_ref(name).expect("ref"),
            Some(written.manifest.clone()),
            "{name}"
        );
    }
}
