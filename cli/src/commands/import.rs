//! `kiln import FILE|URL|- [REPOSITORY[:TAG]]`: a root filesystem tarball
//! becomes a one-layer image in the store, as `docker import` makes one.
//!
//! The tarball (plain, gzip, zstd, xz or bzip2, told by its first bytes) is read
//! once: the uncompressed stream goes both into a store blob (kept
//! uncompressed, as build steps keep their layers: the blob digest is the
//! diff id) and through [`kiln_executor::unpack`], the extractor every
//! base layer goes through, so the hostile-tar rules are the same (`..`
//! refused, absolute names taken below the root, nothing through a
//! symlink) and the layer directory is ready for the first build. The
//! blob is committed only when the whole tar unpacked, under the digest
//! the stream hashed to. `--change` instructions are parsed by
//! kiln-parser and applied by the solver's own lowering of a `FROM
//! scratch` stage, so each means what it means in a Dockerfile.

use crate::global::GlobalArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_oci::{BlobIngester, Digest, ImageConfig, LocalStore, Platform};
use kiln_parser::Instruction;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// The most bytes the uncompressed tar of an import may have.
pub const MAX_TAR_BYTES: u64 = 64 << 30;

/// The most memory the xz decoder may use.
const XZ_MEMORY: u64 = 256 << 20;

/// The instructions `--change` takes (those `docker import` takes).
const CHANGES: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Arguments of `kiln import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The root filesystem tarball: a file, an http(s) URL, or `-` for
    /// standard input (plain tar, gzip, zstd, xz or bzip2).
    source: String,
    /// The image's name, as docker import takes it (`-t` also names it).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
    /// Name the image.
    #[arg(short, long, value_name = "NAME")]
    tag: Option<String>,
    /// A Dockerfile instruction applied to the image's config (repeatable):
    /// CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER,
    /// VOLUME or WORKDIR.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// The history comment (default: `Imported from SOURCE`).
    #[arg(short, long)]
    message: Option<String>,
    /// The image's platform (default: this machine's).
    #[arg(long)]
    platform: Option<String>,
}

/// Runs `kiln import`: prints the new image's id (its manifest digest,
/// as `kiln images` shows ids).
///
/// # Errors
/// One line naming the flag or the source: a bad `--change` or
/// `--platform`, a source that cannot be read, a tar that does not
/// unpack, store errors.
pub fn import(global: &GlobalArgs, args: &ImportArgs) -> Result<()> {
    let name = match (&args.tag, &args.reference) {
        (Some(t), Some(r)) if t != r => {
            bail!("name the image once: -t {t} or {r}, not both")
        }
        (Some(n), _) | (None, Some(n)) => Some(
            crate::commands::image::parse_ref(n)
                .with_context(|| format!("naming the image {n}"))?,
        ),
        (None, None) => None,
    };
    let platform = match &args.platform {
        Some(p) => p
            .parse::<Platform>()
            .with_context(|| format!("--platform {p}"))?,
        None => Platform::host(),
    };
    let mut config = changed_config(&args.changes, &platform)?;

    let store = global.store()?;
    // Keeps `kiln prune` from removing what this import writes.
    let _lease = store.lease()?;
    let staging = store
        .staging_dir()
        .context("creating a staging directory")?;
    let shown = shown_source(&args.source);
    let input = open_source(&args.source, &shown, staging.path())?;
    let (diff_id, size) = store_layer(&store, input, &shown, staging.path())?;

    config.rootfs.diff_ids = vec![diff_id.to_string()];
    config.history = vec![kiln_oci::History {
        comment: Some(
            args.message
                .clone()
                .unwrap_or_else(|| format!("Imported from {shown}")),
        ),
        ..kiln_oci::History::default()
    }];
    let layer = kiln_oci::Layer::in_store(
        store.layout(),
        diff_id.clone(),
        diff_id,
        size,
        kiln_oci::media::OCI_LAYER_TAR,
    );
    let image = kiln_exporter::BuiltImage {
        config,
        stack: kiln_executor::LayerStack::new(vec![layer.dir.clone()]),
        layers: vec![layer],
        epoch: None,
    };
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let written = kiln_exporter::write_image(
        &store,
        &image,
        &created,
        &kiln_exporter::ImageOptions::local(),
        &BTreeMap::new(),
    )?;
    match &name {
        Some(reference) => store.set_ref(&reference.to_string(), &written.manifest)?,
        // Kept as a dangling image (`<none>` in kiln images) until named.
        None => store.set_ref(&format!("<none>@{}", written.manifest), &written.manifest)?,
    }
    println!("{}", written.manifest);
    Ok(())
}

/// The source as messages and the history name it (a URL without its
/// password).
fn shown_source(source: &str) -> String {
    if kiln_solver::context::url::is_http_url(source) {
        kiln_solver::context::git::redact_url(source)
    } else {
        source.to_string()
    }
}

/// The image config `changes` make from an empty one: each is parsed as
/// one Dockerfile instruction and lowered as the last ones of a `FROM
/// scratch` stage; the config lowering gives an empty stage (its PATH)
/// is not kept unless a change set it.
fn changed_config(changes: &[String], platform: &Platform) -> Result<ImageConfig> {
    let mut text = String::from("FROM scratch\n");
    let mut env_keys: Vec<String> = Vec::new();
    for change in changes {
        let parsed = kiln_parser::parse(&format!("FROM scratch\n{change}\n"))
            .map_err(|e| anyhow::anyhow!("--change {change:?}: {}", e.kind))?;
        let commands: Vec<_> = parsed.stages.iter().flat_map(|s| &s.commands).collect();
        let [command] = commands.as_slice() else {
            bail!("--change {change:?}: give one instruction per --change");
        };
        if parsed.stages.len() != 1 || !parsed.global_args.is_empty() {
            bail!("--change {change:?}: give one instruction per --change");
        }
        let keyword = command.keyword.to_ascii_uppercase();
        if !CHANGES.contains(&keyword.as_str()) {
            bail!(
                "--change {change:?}: {keyword} cannot be applied to an imported image (only {})",
                CHANGES.join(", ")
            );
        }
        if let Instruction::Env(kv) = &command.instruction {
            env_keys.extend(kv.pairs.iter().map(|p| p.key.clone()));
        }
        text.push_str(&command.original);
        text.push('\n');
    }
    let lower = |text: &str| -> Result<ImageConfig> {
        let dockerfile = kiln_parser::parse(text).map_err(|e| anyhow::anyhow!("--change: {e}"))?;
        let options = kiln_solver::BuildOptions {
            platform: platform.clone(),
            ..kiln_solver::BuildOptions::default()
        };
        let lowered = kiln_solver::lower(&dockerfile, &options, &NoImages, Path::new("/"))
            .map_err(|e| anyhow::anyhow!("--change: {}", e.message()))?;
        Ok(lowered.config)
    };
    let empty = lower("FROM scratch\n")?;
    let mut config = lower(&text)?;
    // What lowering gives every image (a PATH) docker import does not.
    if let Some(env) = &mut config.config.env {
        let given = empty.config.env.unwrap_or_default();
        env.retain(|e| {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            !given.contains(e) || env_keys.iter().any(|k| k == key)
        });
        if env.is_empty() {
            config.config.env = None;
        }
    }
    config.history.clear();
    config.rootfs.diff_ids.clear();
    Ok(config)
}

/// Refuses every image: a `FROM scratch` stage needs none.
struct NoImages;

impl kiln_solver::ImageResolver for NoImages {
    fn resolve(
        &self,
        reference: &str,
        _: &Platform,
    ) -> std::result::Result<kiln_solver::ResolvedImage, kiln_solver::ResolveError> {
        Err(format!("{reference}: an imported image has no base").into())
    }
}

/// The tarball as a byte stream: standard input, a downloaded URL (into
/// `staging`, with the deadline and size cap of context URLs), or a file.
fn open_source(source: &str, shown: &str, staging: &Path) -> Result<Box<dyn Read + Send>> {
    if source == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    if kiln_solver::context::url::is_http_url(source) {
        let timeout = kiln_solver::context::git::FetchOptions::from_env(Default::default(), None)
            .map_err(|e| anyhow::anyhow!("kiln import {shown}: {e}"))?
            .timeout;
        let path = staging.join("download");
        kiln_solver::context::url::download_to(source, &path, timeout)
            .map_err(|e| anyhow::anyhow!("{}", download_error(e, shown)))?;
        let file = std::fs::File::open(&path).with_context(|| format!("reading {shown}"))?;
        return Ok(Box::new(file));
    }
    let file = std::fs::File::open(source).with_context(|| format!("reading {source}"))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        bail!("{source}: a directory; import takes a tarball (make one with tar -C {source} -c .)");
    }
    Ok(Box::new(file))
}

/// A download error as import's message (the solver's name the context).
fn download_error(e: kiln_solver::context::url::UrlContextError, shown: &str) -> String {
    use kiln_solver::context::url::{UrlContextError as E, MAX_BYTES};
    match e {
        E::Url { .. } => format!("{shown}: not an http or https URL"),
        E::Transfer { message, .. } => format!("{shown}: {message}"),
        E::Timeout { seconds, .. } => format!(
            "{shown}: not downloaded within {seconds}s (set KILN_GIT_TIMEOUT=SECONDS for more)"
        ),
        E::TooBig { .. } => format!("{shown}: larger than {MAX_BYTES} bytes"),
        E::Unpack { source, .. } => format!("{shown}: {source}"),
        other => other.to_string(),
    }
}

/// The uncompressed tar of `input`: gzip, zstd, xz, bzip2 or plain, told
/// apart by the first bytes (what docker import reads).
fn decompressed<'a>(
    input: Box<dyn Read + Send + 'a>,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let head = reader.fill_buf()?;
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        // A header may ask for a dictionary of up to 1.5 GiB: refused
        // above XZ_MEMORY (xz -9 needs 65 MiB).
        let stream = xz2::stream::Stream::new_stream_decoder(XZ_MEMORY, xz2::stream::CONCATENATED)
            .map_err(std::io::Error::other)?;
        return Ok(Box::new(xz2::read::XzDecoder::new_stream(reader, stream)));
    }
    if head.starts_with(b"BZh") {
        return Ok(Box::new(bzip2::read::MultiBzDecoder::new(reader)));
    }
    kiln_oci::compress::decompressor(reader)
}

/// Unpacks `input` (checked as any layer) into the store's layer
/// directory for its diff id and stores its uncompressed tar as the blob
/// of that digest; returns the diff id and the tar's size.
fn store_layer(
    store: &LocalStore,
    input: Box<dyn Read + Send>,
    shown: &str,
    staging: &Path,
) -> Result<(Digest, u64)> {
    let tar = decompressed(input).with_context(|| format!("reading {shown}"))?;
    let mut tee = Tee {
        inner: tar,
        blob: store.writer()?,
        read: 0,
    };
    let unpacked = staging.join("layer");
    let diff_id = kiln_executor::unpack(&mut tee, &unpacked).map_err(|e| match e {
        kiln_executor::UnpackError::Tar(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
            anyhow::anyhow!("{shown}: the tar is larger than {MAX_TAR_BYTES} bytes uncompressed")
        }
        e => anyhow::anyhow!("{shown}: {e}"),
    })?;
    let size = tee.read;
    let blob = tee
        .blob
        .commit(Some(&diff_id), Some(size))
        .with_context(|| format!("storing {shown}"))?;
    let dir = store.layout().layer_dir(&blob);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let _ = kiln_executor::durable::mark_written(&unpacked);
    kiln_executor::commit_dir(&unpacked, &dir)
        .with_context(|| format!("storing layer {}", dir.display()))?;
    Ok((blob, size))
}

/// Passes what it reads on to a store blob, at most [`MAX_TAR_BYTES`].
struct Tee<'a> {
    inner: Box<dyn Read + Send + 'a>,
    blob: kiln_oci::BlobWriter,
    read: u64,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > MAX_TAR_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("larger than {MAX_TAR_BYTES} bytes"),
            ));
        }
        self.blob.write_all(&buf[..n])?;
        Ok(n)
    }
}
