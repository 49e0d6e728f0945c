//! Image commands over the local store and registries: `pull`, `push`,
//! `images`, `tag`, `rmi`, `inspect` (`history` is beside them).

use crate::global::{human_size, runtime, GlobalArgs};
use crate::progress::{ProgressMode, Reporter};
use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_oci::{
    read_manifest, resolve, BlobReader, Digest, LocalStore, Manifest, Platform, Reference,
    TransferObserver,
};
use std::io::Write;
use std::sync::Arc;

/// Runs a pull or push (`run`, given the transfer observer) shown as one
/// vertex `name` of the `--progress` display (nothing with `--quiet`).
fn with_progress<T, E: std::fmt::Display>(
    mode: ProgressMode,
    quiet: bool,
    name: String,
    run: impl FnOnce(Arc<dyn TransferObserver>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let reporter = Reporter::new(if quiet { ProgressMode::Quiet } else { mode });
    let transfer = reporter.transfer(&name);
    let result = run(transfer.clone());
    match &result {
        Ok(_) => transfer.done(),
        Err(e) => transfer.failed(e),
    }
    result
}

fn short(d: &Digest) -> &str {
    &d.hex()[..12]
}

/// Parses a reference the way Docker normalises it, naming the argument in
/// errors.
pub fn parse_ref(text: &str) -> Result<Reference> {
    Reference::parse(text).with_context(|| format!("invalid image reference {text:?}"))
}

/// The digest a local name (or a full digest, or a unique digest prefix)
/// refers to.
pub fn lookup(store: &LocalStore, text: &str) -> Result<(String, Digest)> {
    if let Ok(reference) = Reference::parse(text) {
        let name = reference.to_string();
        if let Some(d) = store.get_ref(&name)? {
            return Ok((name, d));
        }
    }
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() >= 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let matches: Vec<(String, Digest)> = store
            .refs()?
            .into_iter()
            .filter(|(_, d)| d.hex().starts_with(hex))
            .collect();
        if let Some(first) = matches.first() {
            if matches.iter().all(|(_, d)| d == &first.1) {
                return Ok(first.clone());
            }
            bail!("{text} is ambiguous: it matches several images");
        }
    }
    bail!("no image named {text} in the store (kiln images lists them; kiln pull fetches one)")
}

/// Arguments of `kiln pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image (`busybox`, `registry:5000/app:1`, `name@sha256:...`).
    reference: String,
    /// The platform to pull from a multi-platform image (os/arch[/variant]).
    #[arg(long)]
    platform: Option<String>,
    /// Print only the digest.
    #[arg(short, long)]
    quiet: bool,
    /// Progress output: auto, tty, plain, rawjson or quiet.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
}

fn platform_arg(p: &Option<String>) -> Result<Platform> {
    match p {
        Some(p) => p.parse().with_context(|| "--platform".to_string()),
        None => Ok(Platform::host()),
    }
}

/// Runs `kiln pull`.
pub fn pull(global: &GlobalArgs, args: &PullArgs) -> Result<()> {
    let reference = parse_ref(&args.reference)?;
    let platform = platform_arg(&args.platform)?;
    let store = global.store()?;
    let client = global.registry()?;
    let rt = runtime()?;
    let report = with_progress(
        args.progress,
        args.quiet,
        format!("pull {reference}"),
        |observer| rt.block_on(client.pull(&reference, &platform, &store, observer)),
    )
    .with_context(|| format!("pulling {reference}"))?;
    if args.quiet {
        println!("{}", report.digest);
    } else {
        println!(
            "Pulled {reference} ({}): {} blobs downloaded ({}), {} already present\nDigest: {}",
            platform,
            report.fetched,
            human_size(report.bytes),
            report.present,
            report.digest
        );
    }
    Ok(())
}

/// Arguments of `kiln push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The local image to push, to the registry its name says.
    reference: String,
    /// Push to this reference instead of the image's own name.
    destination: Option<String>,
    /// Manifest media types to push: as stored, OCI, or Docker schema 2.
    #[arg(long, value_enum, default_value_t = PushFormat::Stored)]
    format: PushFormat,
    /// How to compress the layers the store keeps uncompressed (those of
    /// images built here); layers already compressed are pushed as they
    /// are. With gzip or zstd the pushed manifest, and so its digest,
    /// differs from the local one, as with `docker push`.
    #[arg(long, value_enum, default_value_t = PushCompression::Gzip)]
    compression: PushCompression,
    /// Print only the digest.
    #[arg(short, long)]
    quiet: bool,
    /// Progress output: auto, tty, plain, rawjson or quiet.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
}

/// How `kiln push` compresses uncompressed layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PushCompression {
    /// gzip, level 6 (what `kiln build --push` pushes).
    Gzip,
    /// zstd, level 3 (needs OCI media types).
    Zstd,
    /// Push them uncompressed, as stored.
    Uncompressed,
}

/// Compresses the uncompressed layers of image `digest` for a push or a
/// save (gzip unless `compression` says otherwise), through the build's
/// remembered conversion: a second push converts nothing.
pub fn compressed_for_transfer(
    store: &LocalStore,
    digest: &Digest,
    compression: kiln_oci::Compression,
) -> Result<Digest> {
    if compression == kiln_oci::Compression::Uncompressed {
        return Ok(digest.clone());
    }
    let options = kiln_exporter::ImageOptions {
        compression,
        ..kiln_exporter::ImageOptions::default()
    };
    kiln_exporter::compress_image(store, digest, &options)
        .with_context(|| format!("compressing the layers of {digest}"))
}

/// Which media types `kiln push` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PushFormat {
    /// Push the manifest with the media types it is stored with (its
    /// digest is kept unless layers are compressed, see --compression).
    Stored,
    /// OCI image-spec media types.
    Oci,
    /// Docker image manifest v2 schema 2 media types.
    Docker,
}

/// Runs `kiln push`.
pub fn push(global: &GlobalArgs, args: &PushArgs) -> Result<()> {
    let store = global.store()?;
    let (name, digest) = lookup(&store, &args.reference)?;
    let _lease = store.lease()?;
    let compression = match args.compression {
        PushCompression::Gzip => kiln_oci::Compression::gzip(),
        PushCompression::Zstd => {
            if matches!(args.format, PushFormat::Docker) {
                bail!("--compression zstd needs OCI media types (not --format docker)");
            }
            kiln_oci::Compression::zstd()
        }
        PushCompression::Uncompressed => kiln_oci::Compression::Uncompressed,
    };
    let digest = compressed_for_transfer(&store, &digest, compression)?;
    let digest = match args.format {
        PushFormat::Stored => digest,
        PushFormat::Oci => {
            kiln_oci::convert_media_types(&store, &digest, kiln_oci::MediaFamily::Oci)?
        }
        PushFormat::Docker => {
            kiln_oci::convert_media_types(&store, &digest, kiln_oci::MediaFamily::Docker)?
        }
    };
    let target = parse_ref(args.destination.as_deref().unwrap_or(&name))?;
    let client = global.registry()?;
    let rt = runtime()?;
    let report = with_progress(
        args.progress,
        args.quiet,
        format!("push {target}"),
        |observer| rt.block_on(client.push(&store, &digest, &target, observer)),
    )
    .with_context(|| format!("pushing {target}"))?;
    if args.quiet {
        println!("{}", report.digest);
    } else {
        println!(
            "Pushed {target}: {} blobs uploaded ({}), {} mounted, {} already there\nDigest: {}",
            report.uploaded,
            human_size(report.bytes),
            report.mounted,
            report.existing,
            report.digest
        );
    }
    Ok(())
}

/// Arguments of `kiln tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// An image in the store (name or digest).
    source: String,
    /// The new name.
    target: String,
}

/// Runs `kiln tag`.
pub fn tag(global: &GlobalArgs, args: &TagArgs) -> Result<()> {
    let store = global.store()?;
    let (_, digest) = lookup(&store, &args.source)?;
    let target = parse_ref(&args.target)?;
    if target.digest().is_some() {
        bail!("cannot tag with a digest reference: {}", args.target);
    }
    store.set_ref(&target.to_string(), &digest)?;
    Ok(())
}

/// Arguments of `kiln rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Images to remove (names; a digest removes every name for it).
    #[arg(required = true)]
    references: Vec<String>,
}

/// Runs `kiln rmi`: removes the names, then the blobs nothing else uses.
pub fn rmi(global: &GlobalArgs, args: &RmiArgs) -> Result<()> {
    let store = global.store()?;
    for text in &args.references {
        let (name, digest) = lookup(&store, text)?;
        let by_name = Reference::parse(text).map(|r| r.to_string()).ok() == Some(name.clone());
        let names: Vec<String> = if by_name {
            vec![name]
        } else {
            store
                .refs()?
                .into_iter()
                .filter(|(_, d)| *d == digest)
                .map(|(n, _)| n)
                .collect()
        };
        for n in names {
            store.remove_ref(&n)?;
            println!("Untagged: {}", familiar(&n));
        }
    }
    let report = store.gc()?;
    for d in &report.removed {
        println!("Deleted: {d}");
    }
    Ok(())
}

fn familiar(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string())
}

/// Arguments of `kiln images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print only image digests.
    #[arg(short, long)]
    quiet: bool,
    /// Show full digests.
    #[arg(long)]
    no_trunc: bool,
}

/// Runs `kiln images`.
pub fn images(global: &GlobalArgs, args: &ImagesArgs) -> Result<()> {
    let store = global.store()?;
    let refs = store.refs()?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for d in refs.values() {
            if seen.insert(d.clone()) {
                writeln!(out, "{}", if args.no_trunc { d.as_str() } else { short(d) })?;
            }
        }
        return Ok(());
    }
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "PLATFORM".into(),
        "SIZE".into(),
    ]];
    for (name, digest) in &refs {
        let (repo, tag) = match Reference::parse(name)
            .ok()
            .filter(|_| !name.starts_with("<none>@"))
        {
            Some(r) => {
                let repo = Reference::parse(&r.name())
                    .map(|n| n.familiar())
                    .unwrap_or_else(|_| r.name());
                let repo = repo.strip_suffix(":latest").unwrap_or(&repo).to_string();
                (repo, r.tag().unwrap_or("<none>").to_string())
            }
            None => ("<none>".into(), "<none>".into()),
        };
        let (platform, size) = match resolve(&store, digest, &Platform::host())
            .or_else(|_| first_image(&store, digest))
        {
            Ok(image) => {
                let mut size = image.manifest_size + store.size(&image.config_digest).unwrap_or(0);
                for l in image.layer_digests().unwrap_or_default() {
                    size += store.size(&l).unwrap_or(0);
                }
                let platform =
                    index_platforms(&store, digest).unwrap_or_else(|| image.platform().to_string());
                (platform, human_size(size))
            }
            Err(_) => ("?".into(), "?".into()),
        };
        let id = if args.no_trunc {
            digest.to_string()
        } else {
            short(digest).to_string()
        };
        rows.push([repo, tag, id, platform, size]);
    }
    crate::table::write(&mut out, &rows)?;
    Ok(())
}

/// For an index (a multi-platform image), the platforms whose images the
/// store has, comma-separated (`linux/amd64,linux/arm64`).
fn index_platforms(store: &dyn BlobReader, digest: &Digest) -> Option<String> {
    let (Manifest::Index(index), _) = read_manifest(store, digest).ok()? else {
        return None;
    };
    let platforms: Vec<String> = index
        .manifests()
        .iter()
        .filter(|d| !kiln_oci::is_attestation(d))
        .filter(|d| kiln_oci::descriptor_digest(d, digest.as_str()).is_ok_and(|c| store.exists(&c)))
        .filter_map(|d| d.platform().as_ref())
        .map(|p| Platform::from_oci(p).short_string())
        .collect();
    (!platforms.is_empty()).then(|| platforms.join(","))
}

/// The image `digest` names for `platform`; without one, the host's, or
/// else the first the store holds of a multi-platform image.
pub fn pick_image(
    store: &LocalStore,
    digest: &Digest,
    platform: &Option<String>,
) -> Result<kiln_oci::Image> {
    Ok(match platform {
        Some(_) => resolve(store, digest, &platform_arg(platform)?)?,
        None => {
            resolve(store, digest, &Platform::host()).or_else(|_| first_image(store, digest))?
        }
    })
}

/// The first image of an index whose manifest is in the store.
fn first_image(store: &dyn BlobReader, digest: &Digest) -> Result<kiln_oci::Image> {
    let (manifest, _) = read_manifest(store, digest)?;
    if let Manifest::Index(index) = manifest {
        for desc in index.manifests() {
            if let Ok(d) = kiln_oci::descriptor_digest(desc, digest.as_str()) {
                if store.exists(&d) {
                    if let Some(p) = desc.platform() {
                        return Ok(resolve(store, digest, &Platform::from_oci(p))?);
                    }
                }
            }
        }
    }
    bail!("no image of {digest} is in the store")
}

/// Arguments of `kiln inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An image in the store (name or digest).
    reference: String,
    /// The platform to show from a multi-platform image.
    #[arg(long)]
    platform: Option<String>,
    /// List the image's attestations (type, platform, predicate type,
    /// digest): attestation manifests of its index, and OCI 1.1 referrers
    /// the store names `REPO:sha256-<hex>`.
    #[arg(long)]
    attestations: bool,
    /// With `--attestations`: `text` (a table) or `json` (the in-toto
    /// statements).
    #[arg(long, value_enum, default_value_t = AttestFormat::Text, requires = "attestations")]
    format: AttestFormat,
}

/// `kiln inspect --attestations --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttestFormat {
    /// A table.
    Text,
    /// The statements as JSON.
    Json,
}

/// One attestation found for an image.
struct FoundAttestation {
    kind: String,
    platform: String,
    predicate_type: String,
    digest: Digest,
    attached: &'static str,
}

/// The `in-toto` layers of attestation manifest `manifest` about an image
/// of `platform`.
fn statement_layers(
    store: &LocalStore,
    manifest: &Digest,
    platform: &str,
    attached: &'static str,
    out: &mut Vec<FoundAttestation>,
) -> Result<()> {
    let (Manifest::Image(m), _) = read_manifest(store, manifest)? else {
        return Ok(());
    };
    for layer in m.layers() {
        let Some(predicate_type) = layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get("in-toto.io/predicate-type"))
        else {
            continue;
        };
        let kind = kiln_exporter::attest::kind_of(predicate_type);
        out.push(FoundAttestation {
            kind: kind.to_string(),
            platform: platform.to_string(),
            predicate_type: predicate_type.clone(),
            digest: kiln_oci::descriptor_digest(layer, manifest.as_str())?,
            attached,
        });
    }
    Ok(())
}

/// The attestations of image `digest` named `name`: in its index, and
/// referrers under `REPO:sha256-<hex>` in the store.
fn find_attestations(
    store: &LocalStore,
    name: &str,
    digest: &Digest,
) -> Result<Vec<FoundAttestation>> {
    let mut out = Vec::new();
    let mut images: Vec<(Digest, String)> = Vec::new();
    match read_manifest(store, digest)?.0 {
        Manifest::Image(_) => {
            let image = first_image(store, digest)
                .or_else(|_| resolve(store, digest, &Platform::host()))?;
            images.push((digest.clone(), image.platform().short_string()));
        }
        Manifest::Index(index) => {
            for d in index
                .manifests()
                .iter()
                .filter(|d| !kiln_oci::is_attestation(d))
            {
                if let (Ok(child), Some(p)) = (
                    kiln_oci::descriptor_digest(d, digest.as_str()),
                    d.platform(),
                ) {
                    images.push((child, Platform::from_oci(p).short_string()));
                }
            }
            for d in index
                .manifests()
                .iter()
                .filter(|d| kiln_oci::is_attestation(d))
            {
                let subject = d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get("vnd.docker.reference.digest"))
                    .cloned()
                    .unwrap_or_default();
                let platform = images
                    .iter()
                    .find(|(i, _)| i.as_str() == subject)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_else(|| "unknown".into());
                let child = kiln_oci::descriptor_digest(d, digest.as_str())?;
                if store.exists(&child) {
                    statement_layers(store, &child, &platform, "index", &mut out)?;
                }
            }
        }
    }
    if let Ok(reference) = Reference::parse(name) {
        for (image, platform) in &images {
            let Ok(tagged) = reference.with_tag(&format!("sha256-{}", image.hex())) else {
                continue;
            };
            let Some(index) = store.get_ref(&tagged.to_string())? else {
                continue;
            };
            if let (Manifest::Index(index), _) = read_manifest(store, &index)? {
                for d in index.manifests() {
                    let child = kiln_oci::descriptor_digest(d, "referrers")?;
                    statement_layers(store, &child, platform, "referrer", &mut out)?;
                }
            }
        }
    }
    Ok(out)
}

/// `kiln inspect --attestations`.
fn inspect_attestations(
    store: &LocalStore,
    name: &str,
    digest: &Digest,
    format: AttestFormat,
) -> Result<()> {
    let found = find_attestations(store, name, digest)?;
    let mut stdout = std::io::stdout().lock();
    match format {
        AttestFormat::Text => {
            writeln!(
                stdout,
                "{:<11} {:<14} {:<9} {:<34} DIGEST",
                "TYPE", "PLATFORM", "ATTACHED", "PREDICATE TYPE"
            )?;
            for f in &found {
                writeln!(
                    stdout,
                    "{:<11} {:<14} {:<9} {:<34} {}",
                    f.kind, f.platform, f.attached, f.predicate_type, f.digest
                )?;
            }
        }
        AttestFormat::Json => {
            let mut list = Vec::new();
            for f in &found {
                let statement: serde_json::Value = serde_json::from_slice(&store.read(&f.digest)?)
                    .with_context(|| format!("statement {} is not JSON", f.digest))?;
                list.push(serde_json::json!({
                    "type": f.kind,
                    "platform": f.platform,
                    "attached": f.attached,
                    "predicateType": f.predicate_type,
                    "digest": f.digest.as_str(),
                    "statement": statement,
                }));
            }
            serde_json::to_writer_pretty(&mut stdout, &list)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// Runs `kiln inspect`: the manifest (and index) and config as JSON.
pub fn inspect(global: &GlobalArgs, args: &InspectArgs) -> Result<()> {
    let store = global.store()?;
    let (name, digest) = lookup(&store, &args.reference)?;
    if args.attestations {
        return inspect_attestations(&store, &name, &digest, args.format);
    }
    let image = pick_image(&store, &digest, &args.platform)?;
    let json = |d: &Digest| -> Result<serde_json::Value> {
        serde_json::from_slice(&store.read(d)?).with_context(|| format!("blob {d} is not JSON"))
    };
    let mut out = serde_json::json!({
        "Name": name,
        "Digest": digest.as_str(),
        "ManifestDigest": image.manifest_digest.as_str(),
        "MediaType": image.manifest_media_type,
        "Platform": image.platform().to_string(),
        "Manifest": json(&image.manifest_digest)?,
        "ConfigDigest": image.config_digest.as_str(),
        "Config": json(&image.config_digest)?,
    });
    if digest != image.manifest_digest {
        out["Index"] = json(&digest)?;
    }
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &out)?;
    writeln!(stdout)?;
    Ok(())
}
