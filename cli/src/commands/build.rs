//! `kiln build`: Dockerfile → graph → solve → image outputs, with
//! `docker buildx build`'s flags.

use super::lint::checks;
use crate::global::{runtime, GlobalArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use kiln_exporter::{BuiltImage, BuiltLayer, ExportTarget};
use kiln_oci::{BlobReader, LocalStore, Platform, Reference, RegistryClient};
use kiln_solver::context::BuildContext;
use kiln_solver::{
    BuildOptions, ImageResolver, NamedContext, ProgressSink, ResolvedImage, SolveOptions,
};
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
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
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
    #[arg(short = 'o', long = "output")]
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
    #[arg(long)]
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
    #[arg(long = "label", value_name = "KEY=VALUE")]
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
    /// `runtime`, else builtin).
    #[arg(long, env = "KILN_RUNTIME")]
    runtime: Option<String>,
    /// Run BuildKit's build checks and print what they find, with source
    /// excerpts, instead of building (`docker build --check`); exits 1 when
    /// anything is found.
    #[arg(long)]
    check: bool,
    /// Reuse build cache exported by another build (repeatable):
    /// `type=registry,ref=REF`, `type=local,src=DIR[,tag=T]`, or a bare
    /// reference.
    #[arg(long = "cache-from", value_name = "CACHE")]
    cache_from: Vec<String>,
    /// Export this build's cache (repeatable):
    /// `type=registry,ref=REF[,mode=min|max]` or
    /// `type=local,dest=DIR[,tag=T][,mode=min|max]`; `mode=max` includes
    /// every stage's steps, `min` (the default) the image's.
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

/// Resolves FROM images from the local store, pulling what is missing.
struct StoreResolver<'a> {
    store: &'a LocalStore,
    client: &'a RegistryClient,
    runtime: &'a tokio::runtime::Runtime,
    progress: &'a Arc<crate::progress::Reporter>,
    /// What FROM names resolved to, for BuildKit's checks.
    resolved: std::cell::RefCell<Vec<checks::Resolved>>,
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(
        &self,
        text: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, String> {
        let reference = Reference::parse(text).map_err(|e| e.to_string())?;
        let name = reference.to_string();
        let digest = match self.store.get_ref(&name).map_err(|e| e.to_string())? {
            Some(d) => d,
            None => {
                let transfer = self.progress.transfer(&format!("[internal] pull {name}"));
                let report = self
                    .runtime
                    .block_on(
                        self.client
                            .pull(&reference, platform, self.store, transfer.clone()),
                    )
                    .map_err(|e| {
                        transfer.failed(&e);
                        format!("failed to resolve source metadata for {name}: {e}")
                    })?;
                transfer.done();
                report.digest
            }
        };
        let image = self.resolved(name, &digest, platform)?;
        self.resolved
            .borrow_mut()
            .push((text.to_string(), platform.clone(), image.config.clone()));
        Ok(image)
    }

    fn resolve_layout(
        &self,
        layout: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, String> {
        let (path, tag, digest) = split_layout(layout);
        let loaded =
            kiln_oci::archive::load(self.store, Path::new(path)).map_err(|e| e.to_string())?;
        let pick = loaded.iter().find(|l| match (tag, digest) {
            (_, Some(d)) => l.digest.as_str() == d,
            (Some(t), None) => l
                .name
                .as_deref()
                .is_some_and(|n| n == t || n.ends_with(&format!(":{t}"))),
            (None, None) => loaded.len() == 1 || l.name.as_deref() == Some("latest"),
        });
        let chosen =
            pick.ok_or_else(|| format!("oci-layout://{layout}: no matching image in the layout"))?;
        let image = self.resolved(format!("oci-layout://{layout}"), &chosen.digest, platform)?;
        self.resolved.borrow_mut().push((
            format!("oci-layout://{layout}"),
            platform.clone(),
            image.config.clone(),
        ));
        Ok(image)
    }
}

impl StoreResolver<'_> {
    fn resolved(
        &self,
        name: String,
        digest: &kiln_oci::Digest,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, String> {
        let image =
            kiln_oci::resolve(self.store, digest, platform).map_err(|e| format!("{name}: {e}"))?;
        let bytes = self
            .store
            .read(&image.config_digest)
            .map_err(|e| e.to_string())?;
        let config = kiln_oci::ImageConfig::from_slice(&bytes)
            .map_err(|e| format!("{name}: config: {e}"))?;
        Ok(ResolvedImage {
            reference: name,
            manifest: image.manifest_digest,
            config,
        })
    }
}

/// Splits `PATH[:TAG|@DIGEST]`.
fn split_layout(layout: &str) -> (&str, Option<&str>, Option<&str>) {
    if let Some((path, digest)) = layout.rsplit_once('@') {
        return (path, None, Some(digest));
    }
    match layout.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => (path, Some(tag), None),
        _ => (layout, None, None),
    }
}

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
    let (dockerfile_name, dockerfile_path, source) = match &args.file {
        Some(p) if p.as_os_str() == "-" => {
            if args.context == "-" {
                bail!("-f - and a context on stdin cannot be used together");
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            ("Dockerfile".to_string(), None, text)
        }
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let text = String::from_utf8(text)
                .map_err(|_| anyhow::anyhow!("{}: not valid UTF-8", p.display()))?;
            (p.display().to_string(), Some(p.clone()), text)
        }
        None => {
            let p = context_dir.join("Dockerfile");
            let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            let text = String::from_utf8(text)
                .map_err(|_| anyhow::anyhow!("{}: not valid UTF-8", p.display()))?;
            ("Dockerfile".to_string(), Some(p), text)
        }
    };
    if source.is_empty() {
        bail!("{dockerfile_name}: the Dockerfile cannot be empty");
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
        network: args.network.clone(),
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

    let cache_from = super::build_cache::parse_cache_from(&args.cache_from)?;
    let cache_to = super::build_cache::parse_cache_to(&args.cache_to)?;

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
            .map_err(|e| match e.line() {
                Some(line) => anyhow::anyhow!(
                    "{dockerfile_name}:{line}: {}",
                    strip_line(&e.to_string(), line)
                ),
                None => anyhow::anyhow!("{dockerfile_name}: {e}"),
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
    if args.check {
        print!("{}", checks::report(&found, &source));
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
        secrets: parse_secrets(&args.secret)?,
        ssh: parse_ssh(&args.ssh)?,
        allow: args
            .allow
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|e: String| anyhow::anyhow!("--allow: {e}"))
            })
            .collect::<Result<_>>()?,
        cache_from: super::build_cache::open_imports(&cache_from, &client, &rt, &reporter),
    };
    let runtime = run_runtime(args.runtime.as_deref(), &config)?;
    let mut solved_all = Vec::new();
    for lowered in &lowered_all {
        let solved = rt
            .block_on(kiln_solver::solve(
                lowered,
                &store,
                contexts.clone(),
                &solve_options,
                runtime.clone(),
                progress.clone(),
            ))
            .map_err(|e| match e.line() {
                Some(line) => anyhow::anyhow!(
                    "{dockerfile_name}:{line}: {}",
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
        super::build_cache::inline_config(&cache_to, solved, &mut image_config);
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
    super::build_cache::export(&cache_to, &solved_all, &store, &client, &rt, &reporter)?;
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

/// `--platform a,b`: the platforms in order, each once (default: this
/// machine's).
fn parse_platforms(value: Option<&str>) -> Result<Vec<Platform>> {
    let Some(value) = value else {
        return Ok(vec![Platform::host()]);
    };
    let mut out: Vec<Platform> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p: Platform = part
            .parse()
            .with_context(|| format!("--platform {part:?}"))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        bail!("--platform {value:?}: no platform given");
    }
    Ok(out)
}

/// The runtime `--runtime` (or `KILN_RUNTIME`) names, else the config
/// file's `runtime`, else builtin.
fn run_runtime(
    flag: Option<&str>,
    config: &crate::config::Config,
) -> Result<Arc<dyn kiln_executor::Runtime>> {
    let (name, origin) = match (flag, &config.checked.runtime) {
        (Some(f), _) => (f, "--runtime".to_string()),
        (None, Some(c)) => (c.as_str(), format!("{} =", config.origin("runtime"))),
        (None, None) => ("builtin", String::new()),
    };
    Ok(match name {
        "builtin" | "" => Arc::new(kiln_executor::BuiltinRuntime),
        other => Arc::new(
            kiln_executor::OciRuntime::new(other).with_context(|| format!("{origin} {other}"))?,
        ),
    })
}

/// Reads `--ssh default|ID[=SOCKET]` (buildx syntax); without a socket,
/// `$SSH_AUTH_SOCK`. Key files are not supported: use an agent.
fn parse_ssh(values: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for value in values {
        let (id, path) = match value.split_once('=') {
            Some((id, path)) => (id.to_string(), PathBuf::from(path)),
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    anyhow::anyhow!(
                        "--ssh {value}: SSH_AUTH_SOCK is not set (give --ssh {value}=SOCKET)"
                    )
                })?;
                (value.clone(), PathBuf::from(sock))
            }
        };
        if id.is_empty() {
            bail!("--ssh {value:?}: the id is empty");
        }
        if path.as_os_str().to_string_lossy().contains(',') {
            bail!("--ssh {value:?}: only one agent socket per id is supported");
        }
        use std::os::unix::fs::FileTypeExt;
        let md = std::fs::metadata(&path)
            .with_context(|| format!("--ssh {value}: {}", path.display()))?;
        if !md.file_type().is_socket() {
            bail!(
                "--ssh {value}: {} is not a socket (kiln forwards SSH agents, not key files; run ssh-agent and ssh-add)",
                path.display()
            );
        }
        out.insert(id, path);
    }
    Ok(out)
}

/// Reads `--secret id=ID[,src=FILE|,env=VAR]` (buildx syntax; `source=`
/// and `type=file|env` accepted; with neither, the variable named ID).
fn parse_secrets(values: &[String]) -> Result<BTreeMap<String, kiln_solver::SecretSource>> {
    let mut out = BTreeMap::new();
    for value in values {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        let mut kind = None;
        for field in value.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--secret {value:?}: {field:?} is not key=value"))?;
            match k {
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                "type" => kind = Some(v.to_string()),
                other => bail!("--secret {value:?}: unknown key {other:?}"),
            }
        }
        let id = id.ok_or_else(|| anyhow::anyhow!("--secret {value:?}: id= is required"))?;
        let source = match (kind.as_deref(), src, env) {
            (Some("env"), Some(v), None) | (_, None, Some(v)) => kiln_solver::SecretSource::Env(v),
            (_, Some(path), None) => kiln_solver::SecretSource::File(PathBuf::from(path)),
            (_, None, None) => kiln_solver::SecretSource::Env(id.clone()),
            (_, Some(_), Some(_)) => bail!("--secret {value:?}: give src= or env=, not both"),
        };
        out.insert(id, source);
    }
    Ok(out)
}

/// Drops a leading `N: ` or `line N: ` the error text already carries.
fn strip_line(text: &str, line: usize) -> String {
    let text = text.strip_prefix(&format!("line {line}: ")).unwrap_or(text);
    text.strip_prefix(&format!("{line}: "))
        .unwrap_or(text)
        .to_string()
}
