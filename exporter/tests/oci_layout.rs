//! OCI layout outputs (`type=oci`, directory and tar) of an image built
//! from real layer tars, read back with skopeo and umoci: digests, config,
//! layers in order, names and annotations, and the filesystem they unpack
//! to.

mod fixture;

use fixture::{
    check_config, layer_digests, layer_media_types, raw_manifest, sha256, umoci_tree, Fixture,
    NAME, TAG,
};
use kiln_exporter::{export, write_index, ExportError, ExportTarget, ImageOptions, WrittenImage};
use kiln_oci::{media, Compression, Digest, Platform};
use kiln_test_support::{skopeo_ok, umoci_ok};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn oci_dir(dest: &Path, options: ImageOptions) -> ExportTarget {
    ExportTarget::Oci {
        dest: dest.to_path_buf(),
        tar: false,
        names: vec![NAME.to_string()],
        options,
    }
}

/// Exports `written` as the OCI layout directory `dir` of the fixture's
/// directory, named [`NAME`]; returns the layout and skopeo's name for the
/// image in it.
fn export_dir(
    f: &Fixture,
    dir: &str,
    options: ImageOptions,
    written: &WrittenImage,
) -> (PathBuf, String) {
    let layout = f.path(dir);
    export(
        &f.store,
        &oci_dir(&layout, options),
        &f.image,
        Some(written),
    )
    .expect("export");
    let image = format!("oci:{}:{TAG}", layout.display());
    (layout, image)
}

#[test]
fn layout_directory_reads_back_with_skopeo_and_umoci() {
    let f = Fixture::new();
    let options = ImageOptions::default();
    let written = f.write(&options, &[("org.opencontainers.image.title", "fixture")]);
    let (layout, image) = export_dir(&f, "layout", options, &written);
    let (bytes, manifest) = raw_manifest(&image);
    assert_eq!(sha256(&bytes), written.manifest, "the manifest's digest");
    assert_eq!(written.media_type, media::OCI_MANIFEST);
    assert_eq!(manifest["mediaType"], media::OCI_MANIFEST);
    assert_eq!(manifest["config"]["digest"], written.config.as_str());
    assert_eq!(manifest["config"]["mediaType"], media::OCI_CONFIG);
    // Layers the build made in the default compression are kept as they are.
    let blobs: Vec<&str> = f.image.layers.iter().map(|l| l.blob.as_str()).collect();
    assert_eq!(layer_digests(&manifest), blobs, "layers, base first");
    assert_eq!(
        layer_media_types(&manifest),
        [media::OCI_LAYER_GZIP, media::OCI_LAYER_GZIP]
    );
    assert_eq!(
        manifest["annotations"],
        serde_json::json!({"org.opencontainers.image.title": "fixture"})
    );
    let diff_ids: Vec<Digest> = f.image.layers.iter().map(|l| l.diff_id.clone()).collect();
    check_config(&image, &diff_ids);

    // The index names the image by its tag and by its full name.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index JSON");
    assert_eq!(index["manifests"][0]["digest"], written.manifest.as_str());
    assert_eq!(
        index["manifests"][0]["annotations"],
        serde_json::json!({
            "org.opencontainers.image.ref.name": TAG,
            "io.containerd.image.name": NAME,
        })
    );
    assert_eq!(
        umoci_ok(&["ls", "--layout", &layout.display().to_string()]).trim(),
        TAG
    );
    assert_eq!(
        umoci_tree(&layout, TAG, &f.path("bundle")),
        fixture::expected_tree()
    );
}

#[test]
fn layout_tar_holds_the_same_image_as_the_directory() {
    let f = Fixture::new();
    let options = ImageOptions::default();
    let written = f.write(&options, &[]);
    let file = f.path("image.tar");
    let target = ExportTarget::Oci {
        dest: file.clone(),
        tar: true,
        names: vec![NAME.to_string()],
        options,
    };
    export(&f.store, &target, &f.image, Some(&written)).expect("export");

    let archive = format!("oci-archive:{}:{TAG}", file.display());
    let (bytes, manifest) = raw_manifest(&archive);
    assert_eq!(sha256(&bytes), written.manifest);
    assert!(manifest.get("annotations").is_none(), "{manifest}");
    let diff_ids: Vec<Digest> = f.image.layers.iter().map(|l| l.diff_id.clone()).collect();
    check_config(&archive, &diff_ids);
    // skopeo copies it into a layout umoci unpacks: the same filesystem.
    let copy = f.path("copy");
    skopeo_ok(&["copy", &archive, &format!("oci:{}:{TAG}", copy.display())]);
    assert_eq!(
        umoci_tree(&copy, TAG, &f.path("bundle")),
        fixture::expected_tree()
    );
}

#[test]
fn converted_layers_keep_their_diff_ids_and_are_made_once() {
    let f = Fixture::new();
    let gzip = f.write(&ImageOptions::default(), &[]);
    for (compression, media_type, dir) in [
        (
            Compression::Zstd { level: 3 },
            media::OCI_LAYER_ZSTD,
            "zstd",
        ),
        (Compression::Uncompressed, media::OCI_LAYER_TAR, "plain"),
    ] {
        let options = ImageOptions {
            keep_layers: false,
            compression,
            ..ImageOptions::default()
        };
        let written = f.write(&options, &[]);
        assert_ne!(written.manifest, gzip.manifest, "{compression:?}");
        let (layout, image) = export_dir(&f, dir, options, &written);
        let (bytes, manifest) = raw_manifest(&image);
        assert_eq!(sha256(&bytes), written.manifest);
        assert_eq!(layer_media_types(&manifest), [media_type, media_type]);
        for (digest, layer) in layer_digests(&manifest).iter().zip(&f.image.layers) {
            assert_ne!(digest.as_str(), layer.blob.as_str(), "{compression:?}");
        }
        let diff_ids: Vec<Digest> = f.image.layers.iter().map(|l| l.diff_id.clone()).collect();
        check_config(&image, &diff_ids);
        if compression == Compression::Uncompressed {
            // A plain tar's blob digest is its diff id.
            let want: Vec<&str> = diff_ids.iter().map(Digest::as_str).collect();
            assert_eq!(layer_digests(&manifest), want);
            assert_eq!(
                umoci_tree(&layout, TAG, &f.path("bundle")),
                fixture::expected_tree()
            );
        }
        // Writing again reuses the converted blobs: the same image.
        assert_eq!(f.write(&options, &[]), written, "{compression:?}");
    }
}

#[test]
fn rewritten_timestamps_are_clamped_to_the_epoch() {
    let mut f = Fixture::new();
    let epoch = fixture::LAYER_MTIME - 1_000_000;
    f.image.epoch = Some(epoch);
    let options = ImageOptions {
        keep_layers: false,
        compression: Compression::Uncompressed,
        rewrite_timestamp: true,
        ..ImageOptions::default()
    };
    let written = f.write(&options, &[]);
    let (layout, image) = export_dir(&f, "layout", options, &written);
    let (_, manifest) = raw_manifest(&image);
    let mut mtimes = Vec::new();
    for digest in layer_digests(&manifest) {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let blob = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("layer blob");
        let mut tar = tar::Archive::new(&blob[..]);
        for entry in tar.entries().expect("layer entries") {
            let entry = entry.expect("layer entry");
            let path = entry.path().expect("entry path").display().to_string();
            // Whiteouts are written with mtime 0.
            if !path.contains(".wh.") {
                mtimes.push(entry.header().mtime().expect("mtime"));
            }
        }
    }
    assert!(!mtimes.is_empty());
    assert!(mtimes.iter().all(|&m| m == epoch), "{mtimes:?}");
    // New tars, so new diff ids in the config.
    let config = fixture::config_of(&image);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff ids");
    assert_eq!(diff_ids.len(), 2);
    for (d, layer) in diff_ids.iter().zip(&f.image.layers) {
        assert_ne!(d.as_str(), Some(layer.diff_id.as_str()));
    }
    assert_eq!(
        umoci_tree(&layout, TAG, &f.path("bundle")),
        fixture::expected_tree()
    );
}

#[test]
fn an_index_names_every_platform() {
    let amd64 = Fixture::new();
    let arm64 = Fixture::for_arch("arm64");
    // Both images in one store: the arm64 layer blobs are copied into the
    // amd64 fixture's store.
    let store = &amd64.store;
    let mut arm_image = arm64.image.clone();
    for layer in &mut arm_image.layers {
        let bytes = std::fs::read(arm64.store.blob_path(&layer.blob)).expect("arm64 blob");
        layer.blob = store
            .write_blob(&bytes, Some(&layer.blob))
            .expect("copy blob");
    }
    let options = ImageOptions::default();
    let no_annotations = BTreeMap::new();
    let images =
        [("linux/amd64", &amd64.image), ("linux/arm64", &arm_image)].map(|(platform, image)| {
            let written = kiln_exporter::write_image(
                store,
                image,
                fixture::CREATED,
                &options,
                &no_annotations,
            )
            .expect("write image");
            (platform.parse::<Platform>().expect("platform"), written)
        });
    let annotations = BTreeMap::from([("org.example.index".to_string(), "both".to_string())]);
    let index = write_index(store, &images, true, &annotations).expect("write index");
    assert_eq!(index.media_type, media::OCI_INDEX);
    assert_eq!(index.config, images[0].1.config);
    let (_, image) = export_dir(&amd64, "layout", options, &index);
    let (bytes, raw) = raw_manifest(&image);
    assert_eq!(sha256(&bytes), index.manifest);
    assert_eq!(raw["mediaType"], media::OCI_INDEX);
    assert_eq!(raw["annotations"]["org.example.index"], "both");
    let listed: Vec<(String, String)> = raw["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                m["digest"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("amd64".to_string(), images[0].1.manifest.to_string()),
            ("arm64".to_string(), images[1].1.manifest.to_string()),
        ]
    );
    // skopeo picks each platform's image out of the index.
    for arch in ["amd64", "arm64"] {
        let config = skopeo_ok(&["--override-arch", arch, "inspect", "--config", &image]);
        let config: serde_json::Value = serde_json::from_str(&config).expect("config JSON");
        assert_eq!(config["architecture"], arch);
    }
}

#[test]
fn zstd_needs_oci_media_types_and_an_image_output_needs_the_image() {
    let f = Fixture::new();
    let options = ImageOptions {
        keep_layers: false,
        compression: Compression::Zstd { level: 3 },
        oci_mediatypes: false,
        ..ImageOptions::default()
    };
    let err = kiln_exporter::write_image(
        &f.store,
        &f.image,
        fixture::CREATED,
        &options,
        &BTreeMap::new(),
    )
    .expect_err("zstd with Docker media types");
    assert!(matches!(err, ExportError::Options(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "compression=zstd needs oci-mediatypes=true"
    );

    let layout = f.path("layout");
    let err = export(
        &f.store,
        &oci_dir(&layout, ImageOptions::default()),
        &f.image,
        None,
    )
    .expect_err("no written image");
    assert_eq!(err.to_string(), "an image output needs the written image");
    assert!(!layout.exists(), "nothing written");
}
