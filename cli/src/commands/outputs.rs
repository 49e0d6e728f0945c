//! Writing a build's result: every `--output` (with `-t` names and
//! `--push`), each image output written with its own options (compression,
//! media types, rewritten timestamps), pushes, loads into Docker
//! (`--load`), `--iidfile` and `--metadata-file`.

use crate::commands::image::parse_ref;
use crate::progress::{eprint_line, Reporter};
use anyhow::{bail, Context, Result};
use kiln_exporter::attest::Attestation;
use kiln_exporter::{BuiltImage, ExportTarget, ImageOptions, WrittenImage};
use kiln_oci::{LocalStore, Platform, RegistryClient};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// What to write, from the `kiln build` flags.
pub struct Outputs<'a> {
    /// `--output` values, parsed.
    pub targets: Vec<ExportTarget>,
    /// `-t` names (normalised).
    pub tags: &'a [String],
    /// `--push`: also push to the `-t` names.
    pub push: bool,
    /// `--annotation` values for the manifest.
    pub annotations: &'a Annotations,
    /// `SOURCE_DATE_EPOCH`: the image's creation time when set.
    pub epoch: Option<u64>,
    /// `--iidfile`.
    pub iidfile: Option<&'a Path>,
    /// `--metadata-file`.
    pub metadata_file: Option<&'a Path>,
    /// The build's progress display (pushes show in it).
    pub reporter: &'a Arc<Reporter>,
    /// Each platform's attestations (empty lists: none).
    pub attestations: &'a [Vec<Attestation>],
    /// Attach them as OCI 1.1 referrers instead of in the index.
    pub referrers: bool,
}

/// The directory a platform's files go to in a multi-platform `type=local`
/// output: `linux_arm64` for `linux/arm64`, `linux_arm_v7` for
/// `linux/arm/v7`, as buildx names them.
pub fn platform_dir(platform: &Platform) -> String {
    platform.short_string().replace('/', "_")
}

/// `--annotation` values by where they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// On each image manifest (`KEY=VALUE` or `manifest:KEY=VALUE`).
    pub manifest: BTreeMap<String, String>,
    /// On the index of a multi-platform build (`index:KEY=VALUE`).
    pub index: BTreeMap<String, String>,
}

/// Reads `--annotation KEY=VALUE`, `manifest:KEY=VALUE` and
/// `index:KEY=VALUE` (buildx syntax).
pub fn parse_annotations(values: &[String]) -> Result<Annotations> {
    let mut out = Annotations::default();
    for value in values {
        let (key, v) = value
            .split_once('=')
            .with_context(|| format!("--annotation {value:?}: expected KEY=VALUE"))?;
        let (map, key) = match key.split_once(':') {
            Some(("manifest", k)) => (&mut out.manifest, k),
            Some(("index", k)) => (&mut out.index, k),
            Some((level, _)) if !level.contains('.') && !level.contains('/') => bail!(
                "--annotation {value:?}: kiln writes manifest and index annotations \
                 (not {level:?})"
            ),
            _ => (&mut out.manifest, key),
        };
        if key.is_empty() {
            bail!("--annotation {value:?}: the key is empty");
        }
        map.insert(key.to_string(), v.to_string());
    }
    Ok(out)
}

/// Writes the built images (one per platform) to every output; the first
/// image output's manifest (or index, with several platforms) goes to the
/// iidfile, the metadata file and the summary, and is returned (`None`
/// when a read-only store leaves no image to name). A `type=local` output of several platforms gets a directory
/// per platform (`linux_amd64`), as with buildx.
pub fn write_outputs(
    store: &LocalStore,
    client: &RegistryClient,
    rt: &tokio::runtime::Runtime,
    images: &[(Platform, BuiltImage)],
    request: Outputs<'_>,
) -> Result<Option<kiln_oci::Digest>> {
    let Some((_, image)) = images.first() else {
        bail!("the build made no image");
    };
    let multi = images.len() > 1;
    let mut targets = request.targets;
    if request.push {
        // buildx: `--push` is `--output=type=registry`.
        targets.push(ExportTarget::Registry {
            names: Vec::new(),
            options: ImageOptions::default(),
        });
    }
    for t in &mut targets {
        if let Some(names) = t.names_mut() {
            if names.is_empty() {
                names.extend(request.tags.iter().cloned());
            }
        }
    }
    // As with buildx: `-t` alone means the local image store; with `-o`,
    // the tags name the image inside those outputs.
    if targets.is_empty() && !request.tags.is_empty() {
        targets.push(ExportTarget::Image {
            names: request.tags.to_vec(),
            push: false,
            options: ImageOptions::local(),
        });
    }
    let summary = request.reporter.prints_summary();
    if targets.is_empty() && summary {
        eprint_line(
            "WARNING: no output specified (use -t NAME or -o); the result is only in the build cache",
        );
    }
    // `type=cacheonly` alone: nothing to write but the cache (the
    // caller's `--cache-to`), and no image to name.
    if !targets.is_empty() && targets.iter().all(|t| *t == ExportTarget::CacheOnly) {
        return Ok(None);
    }
    for t in &targets {
        if matches!(t, ExportTarget::Registry { names, .. } if names.is_empty()) {
            bail!("pushing needs a name: give -t NAME or --output type=registry,name=NAME");
        }
    }
    let created = match request.epoch {
        Some(epoch) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch),
        )
        .to_string(),
        None => humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    // One image per distinct set of options (and with or without
    // attestation manifests), with its per-platform images.
    let attested = !request.referrers && request.attestations.iter().any(|a| !a.is_empty());
    type Written = (WrittenImage, Vec<(Platform, WrittenImage)>);
    let mut written: Vec<((ImageOptions, bool), Written)> = Vec::new();
    let mut write = |options: &ImageOptions, attest: bool| -> Result<Written> {
        if let Some((_, w)) = written.iter().find(|(o, _)| *o == (*options, attest)) {
            return Ok(w.clone());
        }
        let key = (*options, attest);
        // As BuildKit: attestations turn on OCI media types.
        let options = &ImageOptions {
            oci_mediatypes: options.oci_mediatypes || attest,
            ..*options
        };
        let mut each = Vec::new();
        for (platform, image) in images {
            let w = kiln_exporter::write_image(
                store,
                image,
                &created,
                options,
                &request.annotations.manifest,
            )?;
            each.push((platform.clone(), w));
        }
        // Several platforms are named through an index over their images;
        // attestation manifests, as buildx's, need one too.
        let w = match each.as_slice() {
            _ if attest => kiln_exporter::attest::write_attested_index(
                store,
                &each,
                request.attestations,
                request.tags,
                &request.annotations.index,
            )?,
            [(_, only)] => only.clone(),
            _ => kiln_exporter::write_index(
                store,
                &each,
                options.oci_mediatypes,
                &request.annotations.index,
            )?,
        };
        written.push((key, (w.clone(), each.clone())));
        Ok((w, each))
    };
    if request.attestations.iter().any(|a| !a.is_empty()) && summary {
        if let Some(t) = targets
            .iter()
            .find(|t| matches!(t, ExportTarget::Docker { .. }))
        {
            eprint_line(&format!(
                "NOTE: --output {t} gets no attestations (a docker archive holds one manifest, as with buildx's docker exporter)"
            ));
        }
    }
    let mut first: Option<WrittenImage> = None;
    let mut names: Vec<String> = Vec::new();
    for t in &targets {
        let this = match t.image_options() {
            Some(options) => {
                let attest = attested && !matches!(t, ExportTarget::Docker { .. });
                Some(write(options, attest).with_context(|| format!("exporting to {t}"))?)
            }
            None => None,
        };
        match t {
            ExportTarget::Local { dest } if multi => {
                for (platform, image) in images {
                    let sub = ExportTarget::Local {
                        dest: dest.join(platform_dir(platform)),
                    };
                    kiln_exporter::export(store, &sub, image, None)
                        .with_context(|| format!("exporting to {sub}"))?;
                }
            }
            ExportTarget::Tar { .. } if multi => {
                bail!("--output {t}: a rootfs tar holds one platform; use type=local for one directory per platform")
            }
            _ => kiln_exporter::export(store, t, image, this.as_ref().map(|(w, _)| w))
                .with_context(|| format!("exporting to {t}"))?,
        }
        if let (Some((w, _)), true) = (&this, t.is_docker_load()) {
            load_into_docker(
                rt,
                store,
                w,
                &images[0].0,
                t.names(),
                request.reporter,
                summary,
            )?;
        }
        if let Some((w, each)) = &this {
            for name in t.push_names() {
                let target = parse_ref(name)?;
                let transfer = request.reporter.transfer(&format!("pushing {target}"));
                match rt.block_on(client.push(store, &w.manifest, &target, transfer.clone())) {
                    Ok(_) => transfer.done(),
                    Err(e) => {
                        transfer.failed(&e);
                        return Err(e).with_context(|| format!("pushing {target}"));
                    }
                }
            }
            if request.referrers {
                let attached = super::build::Referrers {
                    store,
                    client,
                    rt,
                    reporter: request.reporter,
                };
                attached.write(t, each, request.attestations, request.tags)?;
            }
            names.extend(t.names().iter().cloned());
            first.get_or_insert_with(|| w.clone());
        }
    }
    let main = match first {
        Some(w) => w,
        // Only filesystem outputs, built from a read-only store: there is
        // no image to name, and nowhere to write one.
        None if store.is_read_only() => return Ok(None),
        None => {
            write(&ImageOptions::default(), attested)
                .context("writing the image to the store")?
                .0
        }
    };
    if let Some(path) = request.iidfile {
        std::fs::write(path, main.manifest.as_str())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = request.metadata_file {
        names.dedup();
        let mut metadata = serde_json::json!({
            "containerimage.digest": main.manifest.as_str(),
            "containerimage.descriptor": {
                "mediaType": main.media_type,
                "digest": main.manifest.as_str(),
                "size": main.size,
            },
            "image.name": names.join(","),
        });
        if !multi {
            // An index has no config of its own (buildx leaves it out too).
            metadata["containerimage.config.digest"] = main.config.as_str().into();
        }
        std::fs::write(path, serde_json::to_vec_pretty(&metadata)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if summary {
        eprint_line(&format!("writing image {} done", main.manifest));
        for t in request.tags {
            eprint_line(&format!("naming to {t} done"));
        }
    }
    Ok(Some(main.manifest))
}

/// Streams the written image into the local Docker engine (`--load`).
fn load_into_docker(
    rt: &tokio::runtime::Runtime,
    store: &LocalStore,
    written: &WrittenImage,
    platform: &Platform,
    names: &[String],
    reporter: &Arc<Reporter>,
    summary: bool,
) -> Result<()> {
    use crate::docker_engine::{Engine, EngineAddress};
    let address = EngineAddress::from_env().context("--load")?;
    let transfer = reporter.transfer("loading into the Docker engine");
    let result = rt
        .block_on(Engine::connect(address))
        .and_then(|engine| engine.load(rt, store, &written.manifest, platform, names));
    match result {
        Ok(loaded) => {
            transfer.done();
            if summary {
                for line in &loaded.lines {
                    eprint_line(&format!("docker: {line}"));
                }
            }
            Ok(())
        }
        Err(e) => {
            transfer.failed(&e);
            Err(e.context("--load"))
        }
    }
}
