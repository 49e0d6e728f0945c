//! `kiln build`: Dockerfile → graph → solve → image outputs, with
//! `docker buildx build`'s flags.

mod flags;
mod remote_cache;
mod resolver;

use super::lint::checks;
use crate::global::{runtime, GlobalArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use flags::{parse_call, parse_platforms, parse_secrets, parse_ssh, run_runtime, strip_line, Call};
use kiln_exporter::{BuiltImage, BuiltLayer, ExportTarget};
use kiln_oci::{Platform, Reference};
use kiln_solver::context::BuildContext;
use kiln_solver::{BuildOptions, NamedContext, ProgressSink, SolveOptions};
use resolver::StoreResolver;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `kiln build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context: a directory, or `-` for a tar stream on stdin.
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
    /// Output (repeatable): type=image|registry|oci|docker|local|tar
    /// [,dest=...][,name=...][,push=true] with image options
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
    /// Do not use the cache for these stages (repeatable or comma-separated).
    #[arg(long = "no-cache-filter", value_delimiter = ',')]
    no_cache_filter: Vec<String>,
    /// Steps run at once (default: the config file's `jobs`, else the
    /// number of CPUs).
    #[arg(long, value_parser = flags::positive)]
    jobs: Option<usize>,
    /// Print the build graph without running it.
    #[arg(long, value_enum)]
    print: Option<PrintFormat>,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
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
    /// $SSH_AUTH_SOCK) or `ID=SOCKET`.
    #[arg(long)]
    ssh: Vec<String>,
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
    /// Run BuildKit's build checks and print what they find, with source
    /// excerpts, instead of building (`docker build --check`, the same as
    /// `--call check`); exits 1 when anything is found.
    #[arg(long)]
    check: bool,
    /// What to do instead of building, as buildx's `--call`: `build` (the
    /// default), `check`, or `check,format=json` (BuildKit's lint JSON).
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
}

/// `--print` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PrintFormat {
    /// Graphviz DOT.
    Dag,
    /// JSON.
    Json,
}

// `--progress` modes (auto, tty, plain, rawjson, quiet).
use crate::progress::ProgressMode as Progress;

/// Runs `kiln build`.
pub fn build(global: &GlobalArgs, args: &BuildArgs) -> Result<()> {
    let store = global.store()?;
    // Keeps `kiln prune` from removing what this build writes.
    let _lease = store.lease()?;
    let staging =
        tempfile::tempdir_in(store.root()).context("creating a staging directory in the store")?;

    // The context: a directory or a tar on stdin.
    let stdin_used = args.context == "-" || args.file.as_deref() == Some(Path::new("-"));
    let context_dir = if args.context == "-" {
        let dir = staging.path().join("context");
        std::fs::create_dir_all(&dir)?;
        BuildContext::from_tar(std::io::stdin().lock(), &dir, None)
            .context("reading the context tar from stdin")?;
        dir
    } else {
        let dir = PathBuf::from(&args.context);
        if !dir.is_dir() {
            bail!("context {}: not a directory", dir.display());
        }
        dir
    };
    let _ = stdin_used;

    // The Dockerfile.
    let (dockerfile_name, dockerfile_path, bytes) = match &args.file {
        Some(p) if p.as_os_str() == "-" => {
            if args.context == "-" {
                bail!("-f - and a context on stdin cannot be used together");
            }
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the Dockerfile from stdin")?;
            ("Dockerfile".to_string(), None, bytes)
        }
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("-f {}", p.display()))?;
            (p.display().to_string(), Some(p.clone()), bytes)
        }
        None => {
            let p = context_dir.join("Dockerfile");
            let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            ("Dockerfile".to_string(), Some(p), bytes)
        }
    };
    let source =
        kiln_parser::decode(bytes).map_err(|e| anyhow::anyhow!("{dockerfile_name}:{e}"))?;
    if source.is_empty() {
        bail!("{dockerfile_name}:1:1: the Dockerfile cannot be empty");
    }
    let dockerfile = match kiln_parser::parse(&source) {
        Ok(d) => d,
        Err(e) => bail!("{dockerfile_name}:{e}"),
    };

    // Options.
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
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
    // SOURCE_DATE_EPOCH: a build argument, or the environment (as buildx
    // passes it); it sets the image's creation time.
    if !build_args.contains_key("SOURCE_DATE_EPOCH") {
        if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
            build_args.insert("SOURCE_DATE_EPOCH".into(), v);
        }
    }
    let epoch =
        match build_args.get("SOURCE_DATE_EPOCH") {
            Some(v) if !v.is_empty() => Some(v.trim().parse::<u64>().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?}: expected seconds since 1970")
            })?),
            _ => None,
        };
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("--label {l:?}: expected KEY=VALUE"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let annotations = super::outputs::parse_annotations(&args.annotations)?;
    let secrets = parse_secrets(&args.secret)?;
    let platforms = parse_platforms(args.platform.as_deref())?;
    let multi = platforms.len() > 1;
    let platform = platforms[0].clone();
    let mut named_contexts = BTreeMap::new();
    for c in &args.build_contexts {
        let (name, value) = c
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--build-context {c:?}: expected NAME=VALUE"))?;
        let parsed: NamedContext = value
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--build-context {c:?}: {e}"))?;
        named_contexts.insert(name.to_string(), parsed);
    }
    let options = BuildOptions {
        build_args,
        target: args.target.clone(),
        platform: platform.clone(),
        build_platform: Platform::host(),
        named_contexts,
        network: args
            .network
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--network: {e}"))?,
    };
    let outputs: Vec<ExportTarget> = args
        .outputs
        .iter()
        .map(|o| o.parse::<ExportTarget>())
        .collect::<std::result::Result<_, _>>()?;
    if !multi && !annotations.index.is_empty() {
        bail!("--annotation index:...: a single-platform build writes no index (give several --platform values)");
    }
    if multi {
        if let Some(t) = outputs
            .iter()
            .find(|t| matches!(t, ExportTarget::Docker { .. }))
        {
            bail!("--output {t}: a docker archive holds one platform; build one --platform, or use type=oci for an index");
        }
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

    let cache_from = remote_cache::parse_cache_from(&args.cache_from)?;
    let cache_to = remote_cache::parse_cache_to(&args.cache_to)?;

    let rt = runtime()?;
    let client = global.registry()?;
    let reporter = crate::progress::Reporter::new(args.progress);
    let resolver = StoreResolver {
        store: &store,
        client: &client,
        runtime: &rt,
        progress: &reporter,
        resolved: Default::default(),
    };
    // One graph per platform; a multi-platform build names its steps
    // with their platform, as buildx shows them.
    let mut lowered_all = Vec::new();
    for p in &platforms {
        let options = BuildOptions {
            platform: p.clone(),
            ..options.clone()
        };
        let mut lowered = kiln_solver::lower(&dockerfile, &options, &resolver, &context_dir)
            .map_err(|e| match e.position() {
                Some(at) => anyhow::anyhow!("{dockerfile_name}:{at}: {}", e.message()),
                None => anyhow::anyhow!("{e}"),
            })?;
        if multi {
            lowered.graph.prefix_names(&p.short_string());
        }
        lowered_all.push(lowered);
    }
    let lowered = &lowered_all[0];
    if let Some(format) = args.print {
        let mut out = std::io::stdout().lock();
        match format {
            PrintFormat::Dag => writeln!(out, "{}", lowered.graph.to_dot(&[lowered.root]))?,
            PrintFormat::Json => {
                serde_json::to_writer_pretty(&mut out, &lowered.graph.to_json(&[lowered.root]))?;
                writeln!(out)?;
            }
        }
        return Ok(());
    }

    // BuildKit's checks, knowing the base images lowering resolved.
    let found = checks::run(
        &dockerfile_name,
        &source,
        &checks::through_contexts(&resolver.resolved.borrow(), &options.named_contexts),
        &platform,
        &options.build_args,
    );
    let call = parse_call(args.call.as_deref(), args.check)?;
    if let Call::Check { json } = call {
        if json {
            let report = checks::report_json(&found, &dockerfile_name, &source);
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", checks::report(&found, &source));
        }
        if !found.is_empty() {
            bail!(
                "{dockerfile_name}: {} build check{} found something",
                found.len(),
                if found.len() == 1 { "" } else { "s" }
            );
        }
        return Ok(());
    }
    if checks::has_errors(&found) {
        bail!(
            "{dockerfile_name}: lint violation found for rules: {}\n{}",
            checks::rule_names(&found),
            checks::summary(&found).join("\n")
        );
    }

    // Contexts.
    let mut contexts = HashMap::new();
    for (name, dir) in lowered_all.iter().flat_map(|l| &l.contexts) {
        if contexts.contains_key(name) {
            continue;
        }
        let cache = store.root().join("contexts").join(
            kiln_oci::Digest::sha256(
                dir.canonicalize()
                    .unwrap_or(dir.clone())
                    .to_string_lossy()
                    .as_bytes(),
            )
            .hex(),
        );
        if let Some(parent) = cache.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let ctx = BuildContext::open(dir, dockerfile_path.as_deref())
            .with_context(|| format!("opening the build context {}", dir.display()))?
            .with_checksum_cache(&cache);
        contexts.insert(name.clone(), Arc::new(ctx));
    }
    let progress: Arc<dyn ProgressSink> = reporter.clone();
    // New layers are compressed the way the image outputs want them when
    // they agree (other outputs convert at export).
    let wanted: Vec<kiln_oci::Compression> = outputs
        .iter()
        .filter_map(|t| t.image_options().map(|o| o.compression))
        .chain(args.push.then(kiln_oci::Compression::default))
        .collect();
    let compression = match wanted.first() {
        Some(c) if wanted.iter().all(|w| w == c) => *c,
        _ => kiln_oci::Compression::default(),
    };
    let config = global.config_file()?;
    let solve_options = SolveOptions {
        compression,
        jobs: args
            .jobs
            .or(config.checked.jobs)
            .unwrap_or_else(|| SolveOptions::default().jobs),
        no_cache: args.no_cache,
        no_cache_stages: args.no_cache_filter.clone(),
        secrets,
        ssh: parse_ssh(&args.ssh)?,
        allow: args
            .allow
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|e: kiln_solver::EntitlementError| anyhow::anyhow!("--allow: {e}"))
            })
            .collect::<Result<_>>()?,
        cache_from: remote_cache::open_imports(&cache_from, &client, &rt, &reporter),
        snapshots: Arc::new(kiln_executor::Snapshots::new(
            flags::fallbacks().snapshots(),
        )),
    };
    let runtime = run_runtime(args.runtime.as_deref(), &config)?;
    let mut solved_all = Vec::new();
    for lowered in &lowered_all {
        let solved = rt
            .block_on(kiln_solver::solve_with_cancel(
                lowered,
                &store,
                contexts.clone(),
                &solve_options,
                runtime.clone(),
                progress.clone(),
                crate::signals::build_cancel(),
            ))
            .map_err(|e| match e.line() {
                Some(line) => anyhow::anyhow!(
                    "{dockerfile_name}:{}: {}",
                    instruction_at(&dockerfile, line),
                    strip_line(&e.to_string(), line)
                ),
                None => anyhow::anyhow!("{e}"),
            })?;
        solved_all.push(solved);
    }
    for ctx in contexts.values() {
        // A stale checksum cache only costs time; never fail the build on it.
        let _ = ctx.save_checksum_cache();
    }

    // Export.
    let mut images = Vec::new();
    for (p, solved) in platforms.iter().zip(&solved_all) {
        let mut image_config = solved.config.clone();
        remote_cache::inline_config(&cache_to, solved, &mut image_config);
        if !labels.is_empty() {
            image_config
                .config
                .labels
                .get_or_insert_with(Default::default)
                .extend(labels.clone());
        }
        let image = BuiltImage {
            config: image_config,
            layers: solved
                .layers
                .iter()
                .map(|l| BuiltLayer {
                    blob: l.blob.clone(),
                    size: l.size,
                    media_type: l.media_type.clone(),
                    diff_id: l.diff_id.clone(),
                    dir: l.dir.clone(),
                    from_image: l.from_image,
                })
                .collect(),
            stack: solved.stack(),
            epoch,
        };
        images.push((p.clone(), image));
    }
    super::outputs::write_outputs(
        &store,
        &client,
        &rt,
        &images,
        super::outputs::Outputs {
            targets: outputs,
            tags: &tags,
            push: args.push,
            annotations: &annotations,
            epoch,
            iidfile: args.iidfile.as_deref(),
            metadata_file: args.metadata_file.as_deref(),
            reporter: &reporter,
        },
    )?;
    remote_cache::export(&cache_to, &solved_all, &store, &client, &rt, &reporter)?;
    super::cache::enforce_cap(&store, &config, _lease);
    if !found.is_empty() {
        if reporter.prints_summary() {
            for line in checks::summary(&found) {
                crate::progress::eprint_line(&line);
            }
        } else {
            for d in &found {
                reporter.event(kiln_solver::Event::Note {
                    name: format!("[lint] {dockerfile_name}"),
                    message: format!("{}: {} (line {})", d.code, d.message, d.line),
                });
            }
        }
    }
    Ok(())
}

/// The position of the instruction that starts on `line` (a step's
/// errors know only its line), else the line's first column.
fn instruction_at(dockerfile: &kiln_parser::Dockerfile, line: usize) -> kiln_parser::Position {
    dockerfile
        .global_args
        .iter()
        .chain(
            dockerfile
                .stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(&s.commands)),
        )
        .map(|c| c.span.start)
        .find(|p| p.line == line)
        .unwrap_or(kiln_parser::Position::new(line, 1))
}
