//! `kiln build --cache-from` / `--cache-to`: build cache kept in a
//! registry or an OCI layout directory, with buildx's flag syntax
//! (`type=registry,ref=R,mode=max`, `type=local,dest=DIR`,
//! `type=local,src=DIR`, or a bare reference for a registry).

use crate::progress::Reporter;
use anyhow::{bail, Context, Result};
use kiln_oci::{LocalStore, Reference, RegistryClient};
use kiln_solver::remote_cache::{
    export_to_layout, export_to_registry, CacheMode, CacheSource, LayoutCache, RegistryCache,
};
use kiln_solver::{ProgressSink, Solved};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=registry,ref=R`.
    Registry(Reference),
    /// `type=local,src=DIR` or `dest=DIR`, with the layout tag.
    Local(PathBuf, String),
    /// `--cache-to type=inline`: in the image's own config.
    Inline,
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{r}"),
            CacheLocation::Local(dir, tag) => write!(f, "{}:{tag}", dir.display()),
            CacheLocation::Inline => write!(f, "the image config"),
        }
    }
}

/// A `--cache-to` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTo {
    /// Where the cache goes.
    pub location: CacheLocation,
    /// Which steps go.
    pub mode: CacheMode,
}

/// Reads `--cache-from` (`to == false`, `src=`) or `--cache-to` (`dest=`,
/// `mode=`) options.
fn parse(flag: &str, value: &str, to: bool) -> Result<(CacheLocation, CacheMode)> {
    if !value.contains('=') {
        let reference =
            Reference::parse(value).with_context(|| format!("{flag} {value:?}: reference"))?;
        return Ok((CacheLocation::Registry(reference), CacheMode::default()));
    }
    let mut fields = BTreeMap::new();
    for part in value.split(',') {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("{flag} {value:?}: {part:?} is not KEY=VALUE"))?;
        fields.insert(k.trim().to_string(), v.trim().to_string());
    }
    let mut take = |k: &str| fields.remove(k);
    let kind = take("type").unwrap_or_else(|| "registry".into());
    let mode = match take("mode") {
        Some(m) if to => m
            .parse::<CacheMode>()
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?,
        Some(_) => bail!("{flag} {value:?}: mode= is a --cache-to option"),
        None => CacheMode::default(),
    };
    let location = match kind.as_str() {
        "registry" => {
            let r = take("ref").with_context(|| format!("{flag} {value:?}: ref= is required"))?;
            CacheLocation::Registry(
                Reference::parse(&r).with_context(|| format!("{flag} {value:?}: ref"))?,
            )
        }
        "local" => {
            let key = if to { "dest" } else { "src" };
            let dir = take(key).with_context(|| format!("{flag} {value:?}: {key}= is required"))?;
            let tag = take("tag").unwrap_or_else(|| "latest".into());
            CacheLocation::Local(PathBuf::from(dir), tag)
        }
        "inline" if to => CacheLocation::Inline,
        "inline" => {
            bail!("{flag} {value:?}: an inline cache is read from its image: --cache-from REF")
        }
        other => bail!(
            "{flag} {value:?}: cache type {other:?} is not supported (registry, local or inline)"
        ),
    };
    // buildx options kiln has no use for are accepted and ignored; an
    // unknown key is a mistake worth naming.
    for ignored in [
        "compression",
        "compression-level",
        "force-compression",
        "oci-mediatypes",
        "image-manifest",
        "ignore-error",
    ] {
        fields.remove(ignored);
    }
    if let Some(k) = fields.keys().next() {
        bail!("{flag} {value:?}: unknown option {k:?}");
    }
    if location == CacheLocation::Inline && mode == CacheMode::Max {
        bail!("{flag} {value:?}: an inline cache holds the image's own steps only (mode=min); use type=registry for mode=max");
    }
    Ok((location, mode))
}

/// Reads the `--cache-to` values.
///
/// # Errors
/// A value that does not parse, named with its flag.
pub fn parse_cache_to(values: &[String]) -> Result<Vec<CacheTo>> {
    values
        .iter()
        .map(|v| parse("--cache-to", v, true).map(|(location, mode)| CacheTo { location, mode }))
        .collect()
}

/// Reads the `--cache-from` values.
///
/// # Errors
/// A value that does not parse, named with its flag.
pub fn parse_cache_from(values: &[String]) -> Result<Vec<CacheLocation>> {
    values
        .iter()
        .map(|v| parse("--cache-from", v, false).map(|(location, _)| location))
        .collect()
}

/// Opens the `--cache-from` caches. One that cannot be read is reported
/// and skipped, as buildx does: the build goes on without it.
pub fn open_imports(
    locations: &[CacheLocation],
    client: &RegistryClient,
    runtime: &tokio::runtime::Runtime,
    reporter: &Arc<Reporter>,
) -> Vec<Arc<dyn CacheSource>> {
    let mut out: Vec<Arc<dyn CacheSource>> = Vec::new();
    for location in locations {
        let name = format!("[internal] importing cache from {location}");
        let transfer = reporter.transfer(&name);
        let opened: Result<Arc<dyn CacheSource>, String> = match location {
            CacheLocation::Registry(r) => runtime
                .block_on(RegistryCache::open(client.clone(), r.clone()))
                .map(|c| Arc::new(c) as Arc<dyn CacheSource>)
                .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
            CacheLocation::Local(dir, tag) => LayoutCache::open(dir, tag)
                .map(|c| Arc::new(c) as Arc<dyn CacheSource>)
                .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
            CacheLocation::Inline => continue,
        };
        match opened {
            Ok(cache) => {
                transfer.done();
                out.push(cache);
            }
            Err(e) => {
                reporter.event(kiln_solver::Event::Note {
                    name: name.clone(),
                    message: format!("not used: {e}"),
                });
                transfer.done();
            }
        }
    }
    out
}

/// Writes the build's cache to every `--cache-to`.
///
/// # Errors
/// The first export that fails, naming where it was going.
pub fn export(
    targets: &[CacheTo],
    solved: &[Solved],
    store: &LocalStore,
    client: &RegistryClient,
    runtime: &tokio::runtime::Runtime,
    reporter: &Arc<Reporter>,
) -> Result<()> {
    for target in targets {
        if target.location == CacheLocation::Inline {
            // Already in the image config (see `inline_config`).
            continue;
        }
        let name = format!("[internal] exporting cache to {}", target.location);
        let transfer = reporter.transfer(&name);
        // Every platform's steps; layers a --cache-from cache gave that
        // nothing fetched are fetched now.
        let mut records = Vec::new();
        for one in solved {
            let these = one.cache_records(target.mode);
            if let Err(e) = one.fetch_blobs(store, &these) {
                transfer.failed(&e);
                bail!("exporting the build cache to {}: {e}", target.location);
            }
            records.extend(these);
        }
        let result = match &target.location {
            CacheLocation::Registry(r) => runtime
                .block_on(export_to_registry(
                    store,
                    client,
                    &records,
                    r,
                    transfer.clone(),
                ))
                .map(|_| ()),
            CacheLocation::Local(dir, tag) => {
                export_to_layout(store, &records, dir, tag).map(|_| ())
            }
            CacheLocation::Inline => Ok(()),
        };
        match result {
            Ok(()) => transfer.done(),
            Err(e) => {
                transfer.failed(&e);
                return Err(e)
                    .with_context(|| format!("exporting the build cache to {}", target.location));
            }
        }
    }
    Ok(())
}

/// With `--cache-to type=inline`, the records of the image's own steps
/// go into its config, under `kiln.cache.v1`.
pub fn inline_config(targets: &[CacheTo], solved: &Solved, config: &mut kiln_oci::ImageConfig) {
    if !targets.iter().any(|t| t.location == CacheLocation::Inline) {
        return;
    }
    config.extra.insert(
        kiln_solver::remote_cache::FORMAT.to_string(),
        kiln_solver::remote_cache::inline_value(&solved.cache_records(CacheMode::Min)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_syntax() {
        let to = parse_cache_to(&[
            "type=registry,ref=localhost:5000/app:cache,mode=max".into(),
            "type=local,dest=/tmp/c".into(),
        ])
        .expect("parse");
        assert_eq!(to[0].mode, CacheMode::Max);
        assert_eq!(to[0].location.to_string(), "localhost:5000/app:cache");
        assert_eq!(
            to[1].location,
            CacheLocation::Local("/tmp/c".into(), "latest".into())
        );
        assert_eq!(to[1].mode, CacheMode::Min);
        let from = parse_cache_from(&["user/app:cache".into(), "type=local,src=/c,tag=t".into()])
            .expect("parse");
        assert_eq!(from[0].to_string(), "docker.io/user/app:cache");
        assert_eq!(from[1], CacheLocation::Local("/c".into(), "t".into()));
        for bad in [
            "type=gha",
            "type=local,dest=/x",
            "type=registry",
            "type=registry,ref=a,mode=max",
            "ref=a,what=1",
        ] {
            assert!(parse_cache_from(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_cache_to(&["type=registry,ref=a,mode=all".into()]).is_err());
        assert_eq!(
            parse_cache_to(&["type=inline".into()]).expect("inline")[0].location,
            CacheLocation::Inline
        );
        assert!(parse_cache_to(&["type=inline,mode=max".into()]).is_err());
        assert!(parse_cache_from(&["type=inline".into()]).is_err());
    }
}
