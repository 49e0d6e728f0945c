//! `kiln save` and `kiln load`.

use super::image::{compressed_for_transfer, lookup, parse_ref};
use crate::global::GlobalArgs;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use kiln_oci::archive::{self, NamedImage};
use kiln_oci::Platform;
use std::io::Write;
use std::path::PathBuf;

/// The file format of `kiln save`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SaveFormat {
    /// A docker-archive tarball, as `docker save` writes (`docker load` reads it).
    Docker,
    /// A tar of an OCI image layout.
    Oci,
    /// An OCI image layout directory.
    OciDir,
}

/// Arguments of `kiln save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Images to save (names or digests).
    #[arg(required = true)]
    references: Vec<String>,
    /// Where to write; `-` is standard output (a directory for oci-dir).
    #[arg(short, long)]
    output: PathBuf,
    /// The archive format.
    #[arg(long, value_enum, default_value_t = SaveFormat::Docker)]
    format: SaveFormat,
    /// The platform to save from a multi-platform image (docker format).
    #[arg(long)]
    platform: Option<String>,
}

/// Runs `kiln save`.
pub fn save(global: &GlobalArgs, args: &SaveArgs) -> Result<()> {
    let store = global.store()?;
    let _lease = (!store.is_read_only()).then(|| store.lease()).transpose()?;
    let mut images: Vec<NamedImage> = Vec::new();
    for text in &args.references {
        let (name, digest) = lookup(&store, text)?;
        // Layers built here are stored uncompressed; an OCI layout gets
        // them gzip-compressed, as a pushed image has them. A
        // docker-archive holds every layer uncompressed, whatever the
        // store has, so it needs no conversion; nor can a read-only store
        // take one.
        let convert = !matches!(args.format, SaveFormat::Docker) && !store.is_read_only();
        let digest = match convert {
            true => compressed_for_transfer(&store, &digest, kiln_oci::Compression::gzip())?,
            false => digest,
        };
        match images.iter_mut().find(|i| i.digest == digest) {
            Some(i) => i.names.push(name),
            None => images.push(NamedImage {
                names: vec![name],
                digest,
            }),
        }
    }
    let platform = match &args.platform {
        Some(p) => p.parse().context("--platform")?,
        None => Platform::host(),
    };
    if let SaveFormat::OciDir = args.format {
        archive::write_layout_dir(&store, &images, &args.output)?;
        return Ok(());
    }
    let write = |w: &mut dyn Write| -> Result<()> {
        match args.format {
            SaveFormat::Docker => {
                archive::write_docker_archive(&store, &images, &platform, w)?;
            }
            _ => {
                archive::write_layout_tar(&store, &images, w)?;
            }
        }
        Ok(())
    };
    if args.output.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        write(&mut lock)?;
        lock.flush()?;
        return Ok(());
    }
    // Write beside the target and rename, so a failure never leaves a
    // truncated archive under the requested name.
    let dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut w)?;
        w.flush()?;
    }
    tmp.persist(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(())
}

/// Arguments of `kiln load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// A docker-archive, an OCI layout tar, or an OCI layout directory;
    /// standard input when omitted.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Name the loaded image (when the archive holds one image), e.g. for
    /// OCI layouts whose entries carry only a tag.
    #[arg(short, long)]
    tag: Option<String>,
}

/// Runs `kiln load`.
pub fn load(global: &GlobalArgs, args: &LoadArgs) -> Result<()> {
    let store = global.store()?;
    let loaded = match &args.input {
        Some(path) => archive::load(&store, path)?,
        None => archive::load_tar(
            &store,
            std::io::stdin().lock(),
            std::path::Path::new("<stdin>"),
        )?,
    };
    if loaded.is_empty() {
        bail!("the archive holds no images");
    }
    if let Some(tag) = &args.tag {
        let distinct: std::collections::BTreeSet<_> = loaded.iter().map(|l| &l.digest).collect();
        if distinct.len() != 1 {
            bail!(
                "--tag needs an archive with one image; this one has {}",
                distinct.len()
            );
        }
        let reference = parse_ref(tag)?;
        store.set_ref(&reference.to_string(), &loaded[0].digest)?;
        println!(
            "Loaded image: {} ({})",
            reference.familiar(),
            loaded[0].digest
        );
        return Ok(());
    }
    for image in &loaded {
        let reference = image
            .name
            .as_deref()
            .and_then(|n| kiln_oci::Reference::parse(n).ok())
            .filter(|r| {
                image
                    .name
                    .as_deref()
                    .is_some_and(|n| n.contains(':') || n.contains('/'))
                    || r.tag().is_some()
            });
        match (image.name.as_deref(), reference) {
            // A bare tag from an OCI layout (`latest`) names no repository.
            (Some(n), Some(r)) if n.contains('/') || n.contains(':') => {
                store.set_ref(&r.to_string(), &image.digest)?;
                println!("Loaded image: {} ({})", r.familiar(), image.digest);
            }
            _ => {
                // Kept as a dangling image (shown as <none> by kiln images)
                // so prune does not remove it before it is named.
                store.set_ref(&format!("<none>@{}", image.digest), &image.digest)?;
                println!(
                    "Loaded image ID: {} (no repository name; name it with kiln tag {} NAME, or load with --tag)",
                    image.digest,
                    &image.digest.hex()[..12]
                )
            }
        }
    }
    Ok(())
}
