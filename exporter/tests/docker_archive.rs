//! docker-archive outputs (`type=docker`) of an image built from real
//! layer tars, read back with skopeo and umoci: config, layers (plain tars
//! named by diff id) in order, the tags in `manifest.json`, and the
//! filesystem they unpack to.

mod fixture;

use fixture::{check_config, raw_manifest, sha256, umoci_tree, Fixture, NAME, TAG};
use kiln_exporter::{export, ExportTarget, ImageOptions};
use kiln_oci::{media, Digest};
use kiln_test_support::{layer_listing, skopeo_ok};
use std::io::Read as _;

/// The bytes of the member `name` of the tar file `archive`.
fn member(archive: &std::path::Path, name: &str) -> Vec<u8> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).expect("open archive"));
    for entry in tar.entries().expect("archive entries") {
        let mut entry = entry.expect("archive entry");
        if entry.path().expect("member path").to_str() == Some(name) {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read member");
            return data;
        }
    }
    panic!("{} has no member {name}", archive.display());
}

#[test]
fn docker_archive_reads_back_with_skopeo_and_umoci() {
    let f = Fixture::new();
    // What `type=docker` means by default.
    let target: ExportTarget = format!(
        "type=docker,dest={},\"name={NAME},app:latest\"",
        f.path("image.tar").display()
    )
    .parse()
    .expect("--output");
    let options = *target.image_options().expect("image options");
    assert!(!options.oci_mediatypes, "Docker media types by default");
    let written = f.write(&options, &[]);
    assert_eq!(written.media_type, media::DOCKER_MANIFEST);
    export(&f.store, &target, &f.image, Some(&written)).expect("export");
    let file = f.path("image.tar");

    // manifest.json: the config, the layers named by diff id, the tags.
    let entries: serde_json::Value =
        serde_json::from_slice(&member(&file, "manifest.json")).expect("manifest.json");
    let diff_ids: Vec<Digest> = f.image.layers.iter().map(|l| l.diff_id.clone()).collect();
    let layer_paths: Vec<String> = diff_ids
        .iter()
        .map(|d| format!("blobs/sha256/{}", d.hex()))
        .collect();
    assert_eq!(
        entries,
        serde_json::json!([{
            "Config": format!("blobs/sha256/{}", written.config.hex()),
            "RepoTags": [NAME, "app:latest"],
            "Layers": layer_paths,
        }])
    );
    // Layers are stored as the plain tars the build made.
    assert_eq!(
        member(&file, &layer_paths[0]),
        fixture::base_layer(),
        "base layer"
    );
    assert_eq!(member(&file, &layer_paths[1]), fixture::app_layer());
    assert_eq!(
        layer_listing(&file),
        [
            "755 0 0 0 bin None",
            "755 0 0 20 bin/tool None",
            "777 0 0 0 bin/link Some(\"tool\")",
            "755 0 0 0 etc None",
            "644 0 0 6 etc/hello None",
            "644 0 0 4 etc/old None",
            "755 0 0 0 etc None",
            "644 0 0 8 etc/hello None",
            "0 0 0 0 etc/.wh.old None",
            "750 1000 1000 0 app None",
            "600 1000 1000 5 app/data None",
        ]
    );

    // skopeo reads the archive under each of its tags.
    for name in [NAME, "docker.io/library/app:latest"] {
        let image = format!("docker-archive:{}:{name}", file.display());
        let (_, manifest) = raw_manifest(&image);
        assert_eq!(manifest["config"]["digest"], written.config.as_str());
        let want: Vec<&str> = diff_ids.iter().map(Digest::as_str).collect();
        assert_eq!(fixture::layer_digests(&manifest), want, "{name}");
        check_config(&image, &diff_ids);
    }
    // The config blob is the one written to the store.
    assert_eq!(
        sha256(&member(
            &file,
            &format!("blobs/sha256/{}", written.config.hex())
        )),
        written.config
    );

    let layout = f.path("layout");
    skopeo_ok(&[
        "copy",
        &format!("docker-archive:{}:{NAME}", file.display()),
        &format!("oci:{}:{TAG}", layout.display()),
    ]);
    assert_eq!(
        umoci_tree(&layout, TAG, &f.path("bundle")),
        fixture::expected_tree()
    );
}

#[test]
fn docker_archive_of_an_oci_image_has_the_same_layers() {
    let f = Fixture::new();
    let options = ImageOptions::default();
    let written = f.write(&options, &[]);
    assert_eq!(written.media_type, media::OCI_MANIFEST);
    let file = f.path("oci-media.tar");
    let target = ExportTarget::Docker {
        dest: Some(file.clone()),
        names: vec![],
        options,
    };
    export(&f.store, &target, &f.image, Some(&written)).expect("export");
    let entries: serde_json::Value =
        serde_json::from_slice(&member(&file, "manifest.json")).expect("manifest.json");
    assert_eq!(entries[0]["RepoTags"], serde_json::json!([]));
    let image = format!("docker-archive:{}", file.display());
    let diff_ids: Vec<Digest> = f.image.layers.iter().map(|l| l.diff_id.clone()).collect();
    check_config(&image, &diff_ids);
}
