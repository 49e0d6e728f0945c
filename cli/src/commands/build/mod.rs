//! `kiln build`, with `docker buildx build`'s flags, in four phases:
//! [`request`] (the flags, typed), [`plan`] (the Dockerfile parsed,
//! lowered to a graph per platform and checked), [`solve`] (the graphs
//! run) and [`export`] (images to the outputs, cache to `--cache-to`).

mod attest;
mod call;
mod export;
mod flags;
pub(crate) mod multi;
mod plan;
mod record;
mod remote_cache;
mod remote_context;
mod request;
mod resolver;
mod solve;

use super::lint::checks;
use crate::global::{runtime, GlobalArgs};
use anyhow::{Context, Result};
pub(crate) use attest::Referrers;
use clap::{Args, ValueEnum};
use plan::{Checked, Source};
use request::BuildRequest;
use resolver::StoreResolver;
use std::path::PathBuf;

/// Arguments of `kiln build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context: a directory, `-` for a tar stream on stdin, a
    /// git URL (`https://host/repo.git#REF:SUBDIR`, `git@host:repo.git`,
    /// `git://`, `ssh://`) or an http(s) URL of a tarball (or of a
    /// Dockerfile).
    #[arg(default_value = ".")]
    context: String,
    /// The Dockerfile (default: CONTEXT/Dockerfile); `-` reads stdin.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Name the image (repeatable).
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// A build-time variable (repeatable): KEY=VALUE, or KEY to take it
    /// from the environment.
    #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = flags::build_arg)]
    build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    target: Option<String>,
    /// The platforms to build for (os/arch[/variant], comma-separated);
    /// several make a multi-platform image (an index).
    #[arg(long)]
    platform: Option<String>,
    /// Output (repeatable): type=image|registry|oci|docker|local|tar|cacheonly
    /// [,dest=...][,name=...][,push=true] (type=docker without dest loads
    /// into the Docker engine, as --load) with image options
    /// compression=gzip|zstd|uncompressed, compression-level=N,
    /// force-compression=true, oci-mediatypes=false,
    /// rewrite-timestamp=true; or a directory.
    #[arg(short = 'o', long = "output", value_parser = flags::output)]
    outputs: Vec<String>,
    /// An extra named context (repeatable): NAME=DIR,
    /// NAME=docker-image://REF or NAME=oci-layout://PATH[:TAG].
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    build_contexts: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    no_cache: bool,
    /// Resolve every base image in its registry again, even one the store
    /// holds (what the store has of it is not downloaded again).
    #[arg(long)]
    pull: bool,
    /// Do not use the cache for these stages (repeatable or comma-separated).
    #[arg(long = "no-cache-filter", value_delimiter = ',')]
    no_cache_filter: Vec<String>,
    /// Steps run at once, waiting or not (default: the config file's
    /// `jobs`, else 16, or 4 per CPU above 4 CPUs); kiln's own CPU work
    /// (layer compression, COPY, hashing) uses at most one slot per CPU.
    #[arg(long, value_parser = flags::positive)]
    jobs: Option<usize>,
    /// Print the build graph without running it: `dag` (Graphviz DOT),
    /// `dag=svg` or `dag=png` (drawn by Graphviz's `dot`), or `json`.
    #[arg(long, value_enum)]
    print: Option<PrintFormat>,
    /// Progress output (default: `BUILDKIT_PROGRESS`, else auto).
    #[arg(long, value_enum, default_value_t = Progress::Auto, env = "BUILDKIT_PROGRESS")]
    progress: Progress,
    /// Print nothing but the image's digest (the iidfile's content) on
    /// success, as buildx does; errors still go to stderr.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// SLSA provenance, as buildx's `--provenance`: `true`, `false`,
    /// `mode=min|max[,builder-id=URI]`. Default: `mode=min` when pushing
    /// (unless `BUILDX_NO_DEFAULT_ATTESTATIONS` is set), else none.
    #[arg(long, value_name = "VALUE")]
    provenance: Option<String>,
    /// An SPDX SBOM of the image's packages, as buildx's `--sbom`: `true`
    /// or `false` (`generator=` is accepted and ignored: kiln reads the
    /// image itself).
    #[arg(long, value_name = "VALUE")]
    sbom: Option<String>,
    /// An attestation (repeatable), as buildx's `--attest`:
    /// `type=provenance[,mode=min|max][,builder-id=URI]`, `type=sbom`,
    /// `disabled=true`; `oci-artifact=true` attaches them as OCI 1.1
    /// referrers instead of attestation manifests in the index.
    #[arg(long, value_name = "type=...")]
    attest: Vec<String>,
    /// Accepted for buildx's scripts (as is `BUILDX_BUILDER`): kiln has
    /// no builder instances, and says so once.
    #[arg(long, value_name = "NAME", env = "BUILDX_BUILDER")]
    builder: Option<String>,
    /// Write the image digest to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Write the build result metadata (image digest, config digest,
    /// descriptor, names) to this file as JSON.
    #[arg(long)]
    metadata_file: Option<PathBuf>,
    /// Shorthand for `--output=type=registry`: push the image to the `-t`
    /// names.
    #[arg(long)]
    push: bool,
    /// Shorthand for `--output=type=docker`: load the image into the
    /// Docker engine at `DOCKER_HOST` (else /var/run/docker.sock).
    #[arg(long)]
    load: bool,
    /// Set an image label (repeatable): KEY=VALUE.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = flags::key_value)]
    labels: Vec<String>,
    /// Add a manifest annotation (repeatable): KEY=VALUE or
    /// manifest:KEY=VALUE.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// A secret for RUN --mount=type=secret (id=ID,src=FILE or id=ID,env=VAR).
    #[arg(long)]
    secret: Vec<String>,
    /// An SSH agent for RUN --mount=type=ssh: `default`, `ID` (both use
    /// $SSH_AUTH_SOCK), `ID=SOCKET`, or `ID=KEYFILE[,KEYFILE]` (private
    /// keys, served by kiln's own agent).
    #[arg(long)]
    ssh: Vec<String>,
    /// An extra `/etc/hosts` entry for RUN steps (repeatable): `NAME:IP`
    /// or `NAME=IP`, as buildx's `--add-host`.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// The size of `/dev/shm` in RUN steps, e.g. `128m` or `2g` (powers
    /// of 1024, as buildx's `--shm-size`; default 64m).
    #[arg(long = "shm-size", value_name = "BYTES")]
    shm_size: Option<String>,
    /// A resource limit of RUN steps (repeatable): `NAME=SOFT[:HARD]`,
    /// e.g. `nofile=1024:4096` (`-1` is unlimited), as buildx's `--ulimit`.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    ulimit: Vec<String>,
    /// Run RUN steps in a cgroup of their own under this one (cgroup v1
    /// or v2), as buildx's `--cgroup-parent`.
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    cgroup_parent: Option<String>,
    /// The network of RUN steps without --network: default, host or none.
    #[arg(long, default_value = "default", value_parser = ["default", "host", "none"])]
    network: String,
    /// Grant a privilege (repeatable or comma-separated): network.host,
    /// security.insecure.
    #[arg(long, value_delimiter = ',')]
    allow: Vec<String>,
    /// What runs RUN steps: `builtin` (kiln's own sandbox), `runc`, `crun`
    /// or the path of another OCI runtime (default: the config file's
    /// `runtime`, else builtin). `KILN_RUNTIME` stands for it when it is
    /// not given.
    #[arg(long, value_parser = flags::not_empty)]
    runtime: Option<String>,
    /// How RUN steps are isolated: `auto` (the default: the strongest that
    /// works here, said once in the progress output), `sandbox` (new
    /// namespaces) or `chroot` (for containers that refuse new namespaces,
    /// such as Docker's default seccomp profile; see the README). Default:
    /// `KILN_ISOLATION`, else the config file's `isolation`.
    #[arg(long, value_parser = clap::value_parser!(kiln_executor::Isolation))]
    isolation: Option<kiln_executor::Isolation>,
    /// Run RUN steps of another architecture (`--platform linux/arm64` on
    /// amd64) under QEMU: as root, register Debian's qemu-user-static with
    /// binfmt_misc when no handler is there (said once in the progress
    /// output); `emulate = true` in the config file does the same. Without
    /// it such steps need a handler already registered.
    #[arg(long, env = "KILN_EMULATE")]
    emulate: bool,
    /// Run BuildKit's build checks and print what they find, with source
    /// excerpts, instead of building (`docker build --check`, the same as
    /// `--call check`); exits 1 when anything is found.
    #[arg(long)]
    check: bool,
    /// What to do instead of building, as buildx's `--call`: `build` (the
    /// default), `check` (the build checks), `outline` (the target's build
    /// arguments, secrets and SSH agents) or `targets` (the stages); add
    /// `,format=json` for JSON.
    #[arg(long, value_name = "METHOD")]
    call: Option<String>,
    /// Reuse build cache exported by another build (repeatable):
    /// `type=registry,ref=REF`, `type=local,src=DIR[,tag=T]`, or a bare
    /// reference (a cache, or an image built with `--cache-to type=inline`).
    #[arg(long = "cache-from", value_name = "CACHE")]
    cache_from: Vec<String>,
    /// Export this build's cache (repeatable):
    /// `type=registry,ref=REF[,mode=min|max]` or
    /// `type=local,dest=DIR[,tag=T][,mode=min|max]`, or `type=inline` (in
    /// the image's config); `mode=max` includes every stage's steps, `min`
    /// (the default) the image's.
    #[arg(long = "cache-to", value_name = "CACHE")]
    cache_to: Vec<String>,
    /// Write the build's timeline to this file in the Chrome trace event
    /// format (Perfetto, chrome://tracing), as `kiln builds trace` does.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

/// `--print` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrintFormat {
    /// Graphviz DOT.
    Dag,
    /// The graph drawn as SVG by Graphviz's `dot`.
    #[value(name = "dag=svg")]
    DagSvg,
    /// The graph drawn as PNG by Graphviz's `dot`.
    #[value(name = "dag=png")]
    DagPng,
    /// JSON.
    Json,
}

// `--progress` modes (auto, tty, plain, rawjson, quiet).
use crate::progress::ProgressMode as Progress;

/// Runs `kiln build`; a build (not `--print`, `--check`, `--call`)
/// leaves a record in the store when it ends, and `--trace` writes its
/// timeline.
pub fn build(global: &GlobalArgs, args: &BuildArgs) -> Result<()> {
    let log = std::sync::Arc::new(kiln_solver::builds::StepLog::new());
    let result = build_logged(global, args, &log);
    if !record::is_build(args) {
        return result;
    }
    let store = global.store().ok();
    let info = record::info(args, None);
    let record = record::write(store.as_ref(), &log, info, &result, None);
    if let Some(path) = &args.trace {
        let traced = record::write_trace(&record, path);
        result?;
        return traced;
    }
    result
}

/// [`build`], its steps collected in `log`.
fn build_logged(
    global: &GlobalArgs,
    args: &BuildArgs,
    log: &std::sync::Arc<kiln_solver::builds::StepLog>,
) -> Result<()> {
    if let Some(builder) = &args.builder {
        crate::progress::eprint_line(&format!(
            "NOTE: kiln has no builder instances; --builder {builder} is ignored"
        ));
    }
    let store = global.store()?;
    // Keeps `kiln prune` from removing what this build writes.
    let lease = store.lease()?;
    // What the build reads from stdin.
    let staging = store
        .staging_dir()
        .context("creating a staging directory")?;
    let source = Source::read(args, staging.path())?;
    let request = BuildRequest::from_args(args, &source.fetched)?;
    if call::run(&source, &request)? {
        return Ok(());
    }
    if store.is_read_only() {
        if let Some(writer) = request.store_writer() {
            anyhow::bail!(
                "store {} is read-only and {writer} writes to it: use --root DIR for a writable store, or build to -o type=local or type=tar from this one",
                store.root().display()
            );
        }
    }

    let rt = runtime()?;
    let client = global.registry()?;
    let reporter = crate::progress::Reporter::building(request.progress);
    let resolver = StoreResolver {
        store: &store,
        client: &client,
        runtime: &rt,
        progress: &reporter,
        resolved: Default::default(),
        pull: args.pull,
        log,
    };
    let lowered = plan::lower(&source, &request, &resolver)?;
    if let Some(format) = request.print {
        return plan::print(&lowered[0], format, &plan::last_build_states(&store));
    }
    let found = match plan::check(&source, &request, &resolver)? {
        Checked::Build(found) => found,
        Checked::Done => return Ok(()),
    };

    let config = global.config_file()?;
    let solved = solve::Solver {
        store: &store,
        client: &client,
        rt: &rt,
        reporter: &reporter,
        config: &config,
        log,
    }
    .solve(&source, &request, &lowered)?;
    let attestations = attest::statements(
        &request,
        &attest::Built {
            source: &source,
            lowered: &lowered,
            solved: &solved,
            started: request.started,
            git_context: kiln_solver::context::git::GitUrl::detect(&args.context).map(|_| {
                (
                    args.context.clone(),
                    remote_context::main_commit(staging.path()),
                )
            }),
        },
        &reporter,
    )?;
    export::Exporter {
        store: &store,
        client: &client,
        rt: &rt,
        reporter: &reporter,
    }
    .export(&request, &solved, &attestations)?;
    super::cache::enforce_cap(&store, &config, lease);
    plan::list_found(&found, &source, &reporter);
    Ok(())
}
