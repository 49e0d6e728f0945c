//! The request phase of `kiln build`: its flags read into a typed
//! [`BuildRequest`], every value checked before any work starts.

use super::flags::{parse_call, parse_platforms, parse_secrets, parse_ssh, Call};
use super::{BuildArgs, PrintFormat, Progress};
use crate::commands::outputs::{parse_annotations, Annotations};
use anyhow::{bail, Context, Result};
use kiln_exporter::ExportTarget;
use kiln_oci::{Platform, Reference};
use kiln_solver::cache_options::{CacheLocation, CacheTo};
use kiln_solver::{BuildOptions, Entitlement, NamedContext, SecretSource};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What `kiln build` was asked to do, with every flag parsed.
pub(super) struct BuildRequest {
    /// Lowering's options for the first platform (build args, target,
    /// named contexts, network).
    pub(super) options: BuildOptions,
    /// The platforms, in order; several make an index.
    pub(super) platforms: Vec<Platform>,
    /// `SOURCE_DATE_EPOCH`: the image's creation time when set.
    pub(super) epoch: Option<u64>,
    /// `--label` values.
    pub(super) labels: BTreeMap<String, String>,
    /// `--annotation` values.
    pub(super) annotations: Annotations,
    /// `--output` values.
    pub(super) outputs: Vec<ExportTarget>,
    /// `-t` names, normalised.
    pub(super) tags: Vec<String>,
    /// `--push`.
    pub(super) push: bool,
    /// `--secret` values by id.
    pub(super) secrets: BTreeMap<String, SecretSource>,
    /// `--ssh` agents by id.
    pub(super) ssh: BTreeMap<String, PathBuf>,
    /// `--ssh` key files by id (served by kiln's agent while solving).
    pub(super) ssh_keys: BTreeMap<String, Vec<crate::ssh_agent::KeyFile>>,
    /// `--allow` values.
    pub(super) allow: Vec<Entitlement>,
    /// `--emulate`: register QEMU emulation for foreign RUN steps.
    pub(super) emulate: bool,
    /// `--cache-from` values.
    pub(super) cache_from: Vec<CacheLocation>,
    /// `--cache-to` values.
    pub(super) cache_to: Vec<CacheTo>,
    /// `--call` / `--check`.
    pub(super) call: Call,
    /// `--print`.
    pub(super) print: Option<PrintFormat>,
    /// `--progress` (quiet with `--quiet`).
    pub(super) progress: Progress,
    /// `-q`/`--quiet`: the image digest is all that goes to stdout.
    pub(super) quiet: bool,
    /// `--jobs`.
    pub(super) jobs: Option<usize>,
    /// `--no-cache`.
    pub(super) no_cache: bool,
    /// `--no-cache-filter` stages.
    pub(super) no_cache_stages: Vec<String>,
    /// `--runtime`.
    pub(super) runtime: Option<String>,
    /// `--isolation`.
    pub(super) isolation: Option<kiln_executor::Isolation>,
    /// `--iidfile`.
    pub(super) iidfile: Option<PathBuf>,
    /// `--metadata-file`.
    pub(super) metadata_file: Option<PathBuf>,
    /// `--attest`, `--provenance`, `--sbom` (and the push default).
    pub(super) attest: super::attest::AttestRequest,
    /// When the flags were read: the provenance's `buildStartedOn`.
    pub(super) started: std::time::SystemTime,
}

impl BuildRequest {
    /// Reads the flags (the context and Dockerfile are the plan's).
    ///
    /// # Errors
    /// The first flag whose value is wrong, named with its flag.
    pub(super) fn from_args(
        args: &BuildArgs,
        fetched: &BTreeMap<String, PathBuf>,
    ) -> Result<BuildRequest> {
        let build_args = build_args(&args.build_args);
        let epoch = epoch(&build_args)?;
        let mut labels = BTreeMap::new();
        for l in &args.labels {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("--label {l:?}: expected KEY=VALUE"))?;
            labels.insert(k.to_string(), v.to_string());
        }
        let annotations = parse_annotations(&args.annotations)?;
        let secrets = parse_secrets(&args.secret)?;
        let platforms = parse_platforms(args.platform.as_deref())?;
        let multi = platforms.len() > 1;
        let options = BuildOptions {
            build_args,
            target: args.target.clone(),
            platform: platforms[0].clone(),
            build_platform: Platform::host(),
            named_contexts: named_contexts(&args.build_contexts, fetched)?,
            network: args
                .network
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--network: {e}"))?,
            extra_hosts: args
                .add_host
                .iter()
                .map(|h| super::flags::parse_add_host(h))
                .collect::<Result<_>>()?,
            run_resources: super::flags::run_resources(
                args.shm_size.as_deref(),
                &args.ulimit,
                args.cgroup_parent.as_deref(),
            )?,
        };
        let mut outputs: Vec<ExportTarget> = args
            .outputs
            .iter()
            .map(|o| o.parse::<ExportTarget>())
            .collect::<std::result::Result<_, _>>()?;
        // The store names images in full (docker.io/library/app:1), as `-t`
        // does.
        for t in &mut outputs {
            if let ExportTarget::Image { names, .. } = t {
                for n in names.iter_mut() {
                    *n = Reference::parse(n)
                        .map(|r| r.to_string())
                        .with_context(|| format!("--output name={n:?}"))?;
                }
            }
        }
        // buildx: `--load` is `--output type=docker`.
        if args.load && !outputs.iter().any(ExportTarget::is_docker_load) {
            outputs.push("type=docker".parse()?);
        }
        if !multi && !annotations.index.is_empty() {
            bail!("--annotation index:...: a single-platform build writes no index (give several --platform values)");
        }
        if multi {
            if outputs.iter().any(ExportTarget::is_docker_load) {
                bail!("--load: the Docker engine takes one platform per image (as buildx's docker driver, which cannot load a manifest list); build one --platform, or --push / -o type=oci the index");
            }
            if let Some(t) = outputs
                .iter()
                .find(|t| matches!(t, ExportTarget::Docker { .. }))
            {
                bail!("--output {t}: a docker archive holds one platform; build one --platform, or use type=oci for an index");
            }
        }
        if outputs.iter().any(ExportTarget::is_docker_load) {
            // A wrong DOCKER_HOST or a missing socket is said before the
            // build, not after it.
            crate::docker_engine::EngineAddress::from_env()
                .and_then(|a| a.check_socket())
                .context("--load")?;
        }
        let tags: Vec<String> = args
            .tags
            .iter()
            .map(|t| {
                Reference::parse(t)
                    .map(|r| r.to_string())
                    .with_context(|| format!("-t {t:?}"))
            })
            .collect::<Result<_>>()?;
        let cache_from = args
            .cache_from
            .iter()
            .map(|v| v.parse())
            .collect::<std::result::Result<_, _>>()?;
        let cache_to = args
            .cache_to
            .iter()
            .map(|v| v.parse())
            .collect::<std::result::Result<_, _>>()?;
        let pushing = args.push
            || outputs.iter().any(|t| {
                matches!(
                    t,
                    ExportTarget::Registry { .. } | ExportTarget::Image { push: true, .. }
                )
            });
        let attest = super::attest::parse(
            &args.attest,
            args.provenance.as_deref(),
            args.sbom.as_deref(),
            pushing,
        )?;
        let call = parse_call(args.call.as_deref(), args.check)?;
        let ssh = parse_ssh(&args.ssh)?;
        let mut allow: Vec<Entitlement> = args
            .allow
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|e: kiln_solver::EntitlementError| anyhow::anyhow!("--allow: {e}"))
            })
            .collect::<Result<_>>()?;
        // As with buildx, `--network=host` typed for the whole build is the
        // consent; only a Dockerfile's own `RUN --network=host` asks for
        // `--allow network.host` otherwise.
        if options.network == kiln_solver::NetworkMode::Host
            && !allow.contains(&Entitlement::NetworkHost)
        {
            allow.push(Entitlement::NetworkHost);
        }
        Ok(BuildRequest {
            options,
            platforms,
            epoch,
            labels,
            annotations,
            outputs,
            tags,
            push: args.push,
            secrets,
            ssh: ssh.sockets,
            ssh_keys: ssh.keys,
            allow,
            emulate: args.emulate,
            cache_from,
            cache_to,
            call,
            print: args.print,
            progress: if args.quiet {
                Progress::Quiet
            } else {
                args.progress
            },
            quiet: args.quiet,
            jobs: args.jobs,
            no_cache: args.no_cache,
            no_cache_stages: args.no_cache_filter.clone(),
            runtime: args.runtime.clone(),
            isolation: args.isolation,
            iidfile: args.iidfile.clone(),
            metadata_file: args.metadata_file.clone(),
            attest,
            started: std::time::SystemTime::now(),
        })
    }

    /// What of this build writes to the store when it is a real build:
    /// an image output (even an archive or a push is staged in the store),
    /// the default output (the store), or `--cache-to`. `None` when it
    /// only reads the store: `--print`, `--call check`, or filesystem
    /// outputs (`type=local`, `type=tar`) alone.
    pub(super) fn store_writer(&self) -> Option<String> {
        if self.print.is_some() || !matches!(self.call, Call::Build) {
            return None;
        }
        if self.push {
            return Some("--push".into());
        }
        if self.outputs.is_empty() {
            return Some("the image output (the store)".into());
        }
        if !self.cache_to.is_empty() {
            return Some("--cache-to".into());
        }
        self.outputs
            .iter()
            .find(|t| t.image_options().is_some())
            .map(|t| format!("--output {t}"))
    }

    /// Whether the build makes an index (several platforms).
    pub(super) fn multi_platform(&self) -> bool {
        self.platforms.len() > 1
    }

    /// The conversions the outputs will want of every new layer (new
    /// layers are stored uncompressed): each image output that leaves the
    /// store (or asks for a compression), `--push`, and a registry or
    /// local `--cache-to` (gzip), each once. The build makes them in the
    /// background as steps finish.
    /// Whether something after the solve reads the built filesystem as
    /// files: a local or tar output, an SBOM, or layers rewritten to
    /// `SOURCE_DATE_EPOCH` (made again from their directories).
    pub(super) fn reads_built_files(&self) -> bool {
        self.attest.sbom
            || self.outputs.iter().any(|t| match t.image_options() {
                None => true,
                Some(o) => o.rewrite_timestamp && self.epoch.is_some(),
            })
    }

    pub(super) fn layer_conversions(&self) -> Vec<kiln_exporter::ImageOptions> {
        let mut wanted: Vec<kiln_exporter::ImageOptions> = Vec::new();
        let cache = self
            .cache_to
            .iter()
            .any(|c| c.location != CacheLocation::Inline);
        let all = self
            .outputs
            .iter()
            .filter_map(|t| t.image_options().copied())
            .filter(|o| !o.keep_layers)
            .chain(self.push.then(kiln_exporter::ImageOptions::default))
            .chain(cache.then(kiln_exporter::ImageOptions::default));
        for o in all {
            // Media types do not change a layer's blob.
            let o = kiln_exporter::ImageOptions {
                oci_mediatypes: true,
                ..o
            };
            if !wanted.contains(&o) {
                wanted.push(o);
            }
        }
        wanted
    }
}

/// `--build-arg KEY=VALUE`, or `KEY` from the environment (left out
/// when unset); `SOURCE_DATE_EPOCH` (as buildx passes it) and
/// `BUILDKIT_DOCKERFILE_CHECK` from the environment unless given.
fn build_args(values: &[String]) -> BTreeMap<String, String> {
    let mut build_args = BTreeMap::new();
    for a in values {
        match a.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    for name in [
        "SOURCE_DATE_EPOCH",
        kiln_parser::predefined::DOCKERFILE_CHECK_ARG,
    ] {
        if !build_args.contains_key(name) {
            if let Ok(v) = std::env::var(name) {
                build_args.insert(name.into(), v);
            }
        }
    }
    build_args
}

/// The image's creation time, from the `SOURCE_DATE_EPOCH` build arg.
fn epoch(build_args: &BTreeMap<String, String>) -> Result<Option<u64>> {
    match build_args.get("SOURCE_DATE_EPOCH") {
        Some(v) if !v.is_empty() => {
            Ok(Some(v.trim().parse::<u64>().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?}: expected seconds since 1970")
            })?))
        }
        _ => Ok(None),
    }
}

/// `--build-context NAME=VALUE` values by name (remote ones as the
/// directories they were fetched to).
fn named_contexts(
    values: &[String],
    fetched: &BTreeMap<String, PathBuf>,
) -> Result<BTreeMap<String, NamedContext>> {
    let mut named = BTreeMap::new();
    for c in values {
        let (name, value) = c
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--build-context {c:?}: expected NAME=VALUE"))?;
        // A git or tarball URL was fetched by the plan phase.
        let parsed: NamedContext = match fetched.get(value) {
            Some(dir) => NamedContext::Local(dir.clone()),
            None => value
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--build-context {c:?}: {e}"))?,
        };
        named.insert(name.to_string(), parsed);
    }
    Ok(named)
}

#[cfg(test)]
mod tests;
