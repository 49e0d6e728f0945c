//! Registry outputs (`type=registry`, `--push`): the exporter writes the
//! image to the store and leaves pushing to the caller, which pushes to
//! `ExportTarget::push_names` with kiln-oci's client. The pushed image is
//! read back from a real `docker-registry` on 127.0.0.1 with skopeo and
//! unpacked with umoci.

mod fixture;

use fixture::{check_config, raw_manifest, sha256, umoci_tree, Fixture, TAG};
use kiln_exporter::{export, ExportTarget};
use kiln_oci::{media, Digest, NoProgress, Reference, RegistryClient, StaticCredentials};
use kiln_test_support::{skopeo, skopeo_ok, Auth, Registry};
use std::sync::Arc;

#[test]
fn pushed_images_read_back_with_skopeo_and_umoci() {
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let f = Fixture::new();
    let client = RegistryClient::new(Default::default(), Box::new(StaticCredentials::none()))
        .expect("registry client");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");

    for (repo, oci, manifest_type, layer_type) in [
        ("kiln/oci", true, media::OCI_MANIFEST, media::OCI_LAYER_GZIP),
        (
            "kiln/docker",
            false,
            media::DOCKER_MANIFEST,
            media::DOCKER_LAYER_GZIP,
        ),
    ] {
        let name = format!("{host}/{repo}:{TAG}");
        let target: ExportTarget = format!("type=registry,name={name},oci-mediatypes={oci}")
            .parse()
            .expect("--output");
        assert_eq!(target.push_names(), std::slice::from_ref(&name));
        let options = *target.image_options().expect("image options");
        let written = f.write(&options, &[("org.example.pushed", repo)]);
        // The exporter writes nothing for a registry: pushing is the caller's.
        export(&f.store, &target, &f.image, Some(&written)).expect("export");
        let image = format!("docker://{name}");
        let before = skopeo(&["inspect", "--raw", "--tls-verify=false", &image]);
        assert!(
            !before.status.success(),
            "{repo} is not there before the push"
        );

        for push in target.push_names() {
            let reference = Reference::parse(push).expect("reference");
            let report = rt
                .block_on(client.push(
                    &f.store,
                    &written.manifest,
                    &reference,
                    Arc::new(NoProgress),
                ))
                .expect("push");
            assert_eq!(report.digest, written.manifest);
        }

        let (bytes, manifest) = raw_manifest(&image);
        assert_eq!(sha256(&bytes), written.manifest, "{repo}: the digest");
        assert_eq!(manifest["mediaType"], manifest_type);
        assert_eq!(manifest["config"]["digest"], written.config.as_str());
        assert_eq!(
            fixture::layer_media_types(&manifest),
            [layer_type, layer_type]
        );
        // Only the media types differ: the blobs are the build's.
        let blobs: Vec<&str> = f.image.layers.iter().map(|l| l.blob.as_str()).collect();
        assert_eq!(fixture::layer_digests(&manifest), blobs);
        assert_eq!(manifest["annotations"]["org.example.pushed"], repo);
        let diff_ids: Vec<Digest> = f.image.layers.iter().map(|l| l.diff_id.clone()).collect();
        check_config(&image, &diff_ids);

        let layout = f.path(&format!("layout-{oci}"));
        skopeo_ok(&[
            "copy",
            "--src-tls-verify=false",
            &image,
            &format!("oci:{}:{TAG}", layout.display()),
        ]);
        assert_eq!(
            umoci_tree(&layout, TAG, &f.path(&format!("bundle-{oci}"))),
            fixture::expected_tree(),
            "{repo}"
        );
    }
}
